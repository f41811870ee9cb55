//! `camera-app models`: fetch and check model weights.

use std::path::PathBuf;

use camera_app::model::{self, Manifest};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Download (or copy from a mirror) and verify a model's weights.
    Fetch {
        #[arg(default_value = model::DEFAULT_MODEL)]
        name: String,
        #[arg(long, env = model::MODELS_DIR_ENV)]
        models_dir: Option<PathBuf>,
        /// Copy from this mirror directory instead of downloading.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Download from this URL instead of the manifest's.
        #[arg(long)]
        url: Option<String>,
    },
    /// List the built-in manifests and whether each is present and valid.
    List {
        #[arg(long, env = model::MODELS_DIR_ENV)]
        models_dir: Option<PathBuf>,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Fetch {
            name,
            models_dir,
            from,
            url,
        } => {
            let manifest = Manifest::builtin(&name)?;
            let dir = model::models_dir(models_dir.as_deref())?;
            match model::fetch(&manifest, &dir, from.as_deref(), url.as_deref())? {
                model::Fetched::AlreadyPresent(p) => {
                    println!("{name}: already present and verified at {}", p.display());
                }
                model::Fetched::Copied { from, to } => println!(
                    "{name}: copied {} -> {} (sha256 ok)",
                    from.display(),
                    to.display()
                ),
                model::Fetched::Downloaded { url, to } => {
                    println!("{name}: downloaded {url} -> {} (sha256 ok)", to.display());
                }
            }
            println!(
                "licence: {} ({})",
                manifest.licence, manifest.licence_notice
            );
        }
        Command::List { models_dir } => {
            let dir = model::models_dir(models_dir.as_deref())?;
            let manifest = Manifest::builtin(model::DEFAULT_MODEL)?;
            let path = manifest.path_in(&dir);
            let state = match manifest.verify_file(&path) {
                Ok(()) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            println!(
                "{}\t{}\t{}\t{}",
                manifest.name,
                manifest.licence,
                path.display(),
                state
            );
        }
    }
    Ok(())
}
