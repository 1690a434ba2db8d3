//! `estimator`: train, evaluate and predict with plugin models described by a manifest.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use estimator_host::cli::inspect;
use estimator_host::cli::progress::{LogWriter, ProgressHook};
use estimator_host::cli::scaffold::{self, PluginKind};
use estimator_host::cli::serve_flags::ServeFlags;
use estimator_host::hooks::Hook;
use estimator_host::PluginRegistry;
use estimator_host::StopAt;
use estimator_host::{checkpoint, replica, serve, threads, Error, Estimator, Manifest};

#[derive(Parser)]
#[command(
    name = "estimator",
    version,
    about = "Train, evaluate and predict with plugin models described by a YAML manifest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Override a manifest key, e.g. `--set run_config.random_seed=7` (repeatable; the
    /// value is YAML).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Print the manifest with every default filled in, and exit without running.
    #[arg(long, global = true)]
    print_config: bool,
    /// No progress bar, and only warnings and errors in the log (RUST_LOG still applies).
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Train the model; resumes from the latest checkpoint in model_dir.
    Train {
        manifest: PathBuf,
        /// Train this many steps more than the latest checkpoint has.
        #[arg(long, conflicts_with = "max_steps", value_parser = clap::value_parser!(u64).range(1..))]
        steps: Option<u64>,
        /// Train until the global step reaches this value.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max_steps: Option<u64>,
    },
    /// Train as train_spec says, evaluating new checkpoints as eval_spec says (TF's
    /// train_and_evaluate, local mode).
    TrainAndEvaluate {
        manifest: PathBuf,
        /// Print the last evaluation's metrics as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate the latest checkpoint (or --checkpoint) on input.eval.
    Evaluate {
        manifest: PathBuf,
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Print the metrics dict as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List a model_dir's checkpoints, or a checkpoint's variables or one variable's value.
    Checkpoints {
        model_dir: PathBuf,
        /// List the variables (names and shapes) of the latest checkpoint, or --checkpoint.
        #[arg(long)]
        variables: bool,
        /// Print this variable's value as JSON.
        #[arg(long, value_name = "NAME", conflicts_with = "variables")]
        value: Option<String>,
        /// The checkpoint file to read instead of the latest.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Export the latest checkpoint (or --checkpoint) as a new version under
    /// --export-dir, for `estimator serve`; prints the version's directory last.
    Export {
        manifest: PathBuf,
        /// The base directory: the export is written to EXPORT_DIR/UNIX_SECONDS/.
        #[arg(long)]
        export_dir: PathBuf,
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Write one JSON object of predictions per example.
    Predict {
        manifest: PathBuf,
        #[arg(long, conflicts_with = "export_dir")]
        checkpoint: Option<PathBuf>,
        /// Predict with this exported version (a directory `estimator export` wrote)
        /// instead of model_dir's checkpoint.
        #[arg(long)]
        export_dir: Option<PathBuf>,
        /// Read examples from this file instead of the manifest's input (sets params.path).
        #[arg(long)]
        input: Option<PathBuf>,
        /// Write predictions here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Serve exported versions over TF Serving's REST API, swapping in new versions as
    /// they appear under the base path.
    Serve(Box<ServeFlags>),
    /// Write a new plugin crate into DIR (its name names the plugin): a working model,
    /// metric or input, a manifest that trains with it, data, and a test.
    NewPlugin {
        dir: PathBuf,
        #[arg(long, value_enum, default_value = "model")]
        kind: Kind,
        /// The plugin-api crate to depend on (default: the one this estimator was built from).
        #[arg(long)]
        plugin_api: Option<PathBuf>,
    },
}

/// `new-plugin --kind`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Kind {
    Model,
    Metric,
    Input,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // clap's report spans lines up to its usage section: keep it, on one line.
            let text = e.to_string();
            let message = text.split("Usage:").next().unwrap_or_default();
            let message = one_line(message.trim_start_matches("error: "));
            eprintln!("error: {message} (see estimator --help)");
            return ExitCode::from(2);
        }
        Err(e) => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    // Under mpirun, rank 0 logs as one process would; the others only warnings and errors,
    // each line starting with their rank.
    let rank = launched_rank();
    if rank > 0 {
        LogWriter::set_prefix(format!("[rank {rank}] "));
    }
    init_logging(cli.quiet || rank > 0);
    let replicas = match replica::Replicas::from_launcher() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}", one_line(&e.to_string()));
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let replicas = std::rc::Rc::new(replicas);
    match run(cli, &replicas) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Interrupted(signal)) => ExitCode::from((128 + signal) as u8),
        Err(e) => {
            let prefix = if rank > 0 {
                format!("[rank {rank}] ")
            } else {
                String::new()
            };
            eprintln!("{prefix}error: {}", one_line(&e.to_string()));
            // A failure the ranks did not agree on (one rank's, outside the loops) would
            // leave the others waiting in a collective: end the whole job, with this
            // exit code.
            if replicas.is_distributed() && !replicas.failure_agreed() {
                replicas.abort(e.exit_code());
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// This process's rank as the launcher numbered it; 0 without one.
fn launched_rank() -> usize {
    ["OMPI_COMM_WORLD_RANK", "PMI_RANK"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(0)
}

fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour codes only for a person at a terminal, not in piped or redirected logs.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter::default)
        .with_ansi(colour)
        .with_target(false)
        .init();
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What the command did, for the exit code.
enum Outcome {
    Done,
    /// Stopped by this signal after saving a checkpoint.
    Interrupted(i32),
}

fn run(cli: Cli, replicas: &std::rc::Rc<replica::Replicas>) -> Result<Outcome, Error> {
    // Every command that reads a manifest sets the matmul threads from it, before any
    // plugin is loaded.
    let load = |path: &std::path::Path| {
        let manifest = Manifest::load_with(path, &cli.overrides)?;
        // Ranks on one machine share its cores.
        threads::configure(threads::intra_op_threads(
            manifest.run_config.intra_op_threads,
            replica::local_ranks(),
        ));
        Ok::<_, Error>(manifest)
    };
    // Draws only when stderr is a terminal.
    let mut progress = ProgressHook::new();
    let mut hooks: Vec<&mut dyn Hook> = Vec::new();
    if !cli.quiet {
        hooks.push(&mut progress);
    }
    // Under mpirun, `train`, `train-and-evaluate`, `evaluate` and `predict` (of a
    // checkpoint) run on every rank; any other command runs on rank 0 alone, as one
    // process would.
    if replicas.is_distributed() {
        match &cli.command {
            Command::Train { .. } | Command::TrainAndEvaluate { .. } | Command::Evaluate { .. } => {
            }
            Command::Predict {
                export_dir: None, ..
            } => {}
            _ if !replicas.is_chief() => return Ok(Outcome::Done),
            _ => {}
        }
    }
    if cli.print_config {
        let manifest = match &cli.command {
            Command::Train { manifest, .. }
            | Command::TrainAndEvaluate { manifest, .. }
            | Command::Evaluate { manifest, .. }
            | Command::Predict { manifest, .. }
            | Command::Export { manifest, .. } => manifest,
            Command::Checkpoints { .. } | Command::NewPlugin { .. } | Command::Serve(_) => {
                return Err(Error::Usage(
                    "--print-config needs a command that reads a manifest".into(),
                ))
            }
        };
        let est = Estimator::new(load(manifest)?, PluginRegistry::from_env());
        print!("{}", est.resolved_config()?);
        return Ok(Outcome::Done);
    }
    match cli.command {
        Command::Train {
            manifest,
            steps,
            max_steps,
        } => {
            let stop = steps.map(StopAt::Steps).or(max_steps.map(StopAt::MaxSteps));
            let mut est = Estimator::new(load(&manifest)?, PluginRegistry::from_env())
                .with_replicas(std::rc::Rc::clone(replicas));
            let signals = Signals::watch(&est.stop_flag())?;
            let outcome = est.train_with_hooks(stop, hooks)?;
            if outcome.interrupted {
                let signal = signals.received();
                tracing::warn!(
                    "Stopped by signal {signal} at global step {}; checkpoint saved.",
                    outcome.global_step
                );
                return Ok(Outcome::Interrupted(signal));
            }
        }
        Command::TrainAndEvaluate { manifest, json } => {
            let mut est = Estimator::new(load(&manifest)?, PluginRegistry::from_env())
                .with_replicas(std::rc::Rc::clone(replicas));
            let signals = Signals::watch(&est.stop_flag())?;
            let outcome = est.train_and_evaluate_with_hooks(hooks)?;
            if json && replicas.is_chief() {
                println!("{}", metrics_json(&outcome.metrics));
            }
            if outcome.train.interrupted {
                let signal = signals.received();
                tracing::warn!(
                    "Stopped by signal {signal} at global step {}; checkpoint saved.",
                    outcome.train.global_step
                );
                return Ok(Outcome::Interrupted(signal));
            }
        }
        Command::Evaluate {
            manifest,
            checkpoint,
            json,
        } => {
            let mut est = Estimator::new(load(&manifest)?, PluginRegistry::from_env())
                .with_replicas(std::rc::Rc::clone(replicas));
            let results = est.evaluate_with_hooks(checkpoint.as_deref(), hooks)?;
            if json && replicas.is_chief() {
                println!("{}", metrics_json(&results));
            }
        }
        Command::Checkpoints {
            model_dir,
            variables,
            value,
            checkpoint,
        } => {
            if !variables && value.is_none() {
                print!("{}", inspect::list(&model_dir)?);
                return Ok(Outcome::Done);
            }
            let ckpt = match checkpoint {
                Some(path) => checkpoint::read(&path)?,
                None => checkpoint::read_latest_whole(&model_dir)?.ok_or_else(|| {
                    Error::Usage(format!(
                        "Could not find trained model in model_dir: {}",
                        model_dir.display()
                    ))
                })?,
            };
            match value {
                Some(name) => println!("{}", inspect::value(&ckpt, &name)?),
                None => print!("{}", inspect::variables(&ckpt)),
            }
        }
        Command::Export {
            manifest,
            export_dir,
            checkpoint,
        } => {
            let mut est = Estimator::new(load(&manifest)?, PluginRegistry::from_env());
            let dir = est.export(&export_dir, checkpoint.as_deref())?;
            println!("{}", dir.display());
        }
        Command::Predict {
            manifest,
            checkpoint,
            export_dir,
            input,
            output,
        } => {
            let mut m = load(&manifest)?;
            if let Some(path) = input {
                m.override_predict_path(&path)?;
            }
            let mut est = Estimator::new(m, PluginRegistry::from_env())
                .with_replicas(std::rc::Rc::clone(replicas));
            // Rank 0 writes every rank's predictions.
            let mut out: Box<dyn Write> = match &output {
                _ if !replicas.is_chief() => Box::new(std::io::sink()),
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .map_err(|e| Error::io(format!("{}: cannot create", path.display()), e))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let write_err = |e| Error::io("cannot write predictions", e);
            let write = |example: estimator_host::PredictionRow<'_>| {
                serde_json::to_writer(&mut out, &example).map_err(|e| write_err(e.into()))?;
                out.write_all(b"\n").map_err(write_err)
            };
            match export_dir {
                Some(dir) => est.predict_export(&dir, write)?,
                None => est.predict_with_hooks(checkpoint.as_deref(), hooks, write)?,
            };
            out.flush().map_err(write_err)?;
        }
        Command::Serve(flags) => serve::run(flags.into_config()?)?,
        Command::NewPlugin {
            dir,
            kind,
            plugin_api,
        } => {
            let kind = match kind {
                Kind::Model => PluginKind::Model,
                Kind::Metric => PluginKind::Metric,
                Kind::Input => PluginKind::Input,
            };
            let api = plugin_api.unwrap_or_else(scaffold::default_plugin_api);
            let name = scaffold::new_plugin(&dir, kind, &api)?;
            println!(
                "wrote plugin `{name}` in {}: cd there, then `cargo build --release` and \
                 `ESTIMATOR_PLUGIN_PATH=target/release estimator train manifest.yaml`",
                dir.display()
            );
        }
    }
    Ok(Outcome::Done)
}

/// TF's metrics dict as one JSON object, `global_step` as an integer.
fn metrics_json(metrics: &std::collections::BTreeMap<String, f64>) -> serde_json::Value {
    let object = metrics
        .iter()
        .map(|(k, &v)| {
            let value = match k.as_str() {
                "global_step" => serde_json::Value::from(v as i64),
                _ => serde_json::json!(v),
            };
            (k.clone(), value)
        })
        .collect();
    serde_json::Value::Object(object)
}

/// SIGINT and SIGTERM ask training to stop, save and exit; a second one ends the process
/// at once.
struct Signals {
    interrupt: Arc<AtomicBool>,
}

impl Signals {
    fn watch(stop: &Arc<AtomicBool>) -> Result<Self, Error> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let interrupt = Arc::new(AtomicBool::new(false));
        let register = || -> std::io::Result<()> {
            for signal in [SIGINT, SIGTERM] {
                // Registered before the flag, so it sees the flag as the first signal left it.
                signal_hook::flag::register_conditional_shutdown(
                    signal,
                    128 + signal,
                    Arc::clone(stop),
                )?;
                signal_hook::flag::register(signal, Arc::clone(stop))?;
            }
            signal_hook::flag::register(SIGINT, Arc::clone(&interrupt))?;
            Ok(())
        };
        register().map_err(|e| Error::io("cannot watch for SIGINT and SIGTERM", e))?;
        Ok(Signals { interrupt })
    }

    /// The signal that stopped training: SIGINT if one came, else SIGTERM.
    fn received(&self) -> i32 {
        match self.interrupt.load(Ordering::Relaxed) {
            true => signal_hook::consts::SIGINT,
            false => signal_hook::consts::SIGTERM,
        }
    }
}
