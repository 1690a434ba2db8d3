"""Writes a 100 MB TF checkpoint (a 1M x 25 float32 embedding and the global step) to
the folder given, with TF's `checkpoint` state file, for measuring how fast the TF
checkpoint reader goes:

    python3 scripts/tf/wide_checkpoint.py /tmp/wide
    time target/release/estimator checkpoints /tmp/wide --value global_step
"""

import sys

import tensorflow as tf

tf1 = tf.compat.v1
tf1.disable_eager_execution()
with tf1.Graph().as_default():
    tf1.get_variable(
        "dnn/input_from_feature_columns/input_layer/id_embedding/embedding_weights",
        [1_000_000, 25],
        initializer=tf1.random_normal_initializer(seed=7),
    )
    step = tf1.train.get_or_create_global_step()
    with tf1.Session() as session:
        session.run(tf1.global_variables_initializer())
        tf1.train.Saver().save(session, f"{sys.argv[1]}/model.ckpt", global_step=step)
