//! `scenegen`: render scenario files into frames, analytics.toml and truth.json.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Render semi-synthetic store-door scenes with ground truth")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render one scenario into OUT (frames/, analytics.toml, truth.json).
    Render {
        scenario: PathBuf,
        /// The shared sample photos (default: ../shared/images beside the repository).
        #[arg(long)]
        images: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Render every scenario of a directory into OUT/<name>/.
    RenderAll {
        /// Scenario directory (default: the repository's tests/scenes).
        #[arg(long)]
        scenes: Option<PathBuf>,
        #[arg(long)]
        images: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write one frame as PNG with the true boxes and the lines drawn on it.
    Preview {
        scenario: PathBuf,
        #[arg(long)]
        frame: usize,
        #[arg(long)]
        images: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print each scenario's truth summary (counts, visits) without rendering.
    Truth {
        #[arg(long)]
        scenes: Option<PathBuf>,
        #[arg(long)]
        images: Option<PathBuf>,
    },
}

fn render_one(path: &Path, images: &Path, out: &Path) -> anyhow::Result<()> {
    let s = scenegen::Scenario::load(path)?;
    let truth = scenegen::render(&s, images, out)
        .with_context(|| format!("rendering {}", path.display()))?;
    println!(
        "{}: {} frames -> {} ({})",
        s.name,
        truth.frames,
        out.display(),
        summary(&truth)
    );
    Ok(())
}

fn summary(t: &scenegen::Truth) -> String {
    let mut parts: Vec<String> = t
        .counts
        .iter()
        .map(|(n, c)| format!("{n}: in {} out {}", c.count_in, c.count_out))
        .collect();
    for (n, v) in &t.visits {
        parts.push(format!("{n}: {} visits", v.len()));
    }
    parts.push(format!("passers-by {} entries {}", t.passers_by, t.entries));
    parts.join(", ")
}

fn main_inner() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let images_or_default = |i: Option<PathBuf>| i.unwrap_or_else(scenegen::shared_images_dir);
    match cli.command {
        Command::Render {
            scenario,
            images,
            out,
        } => render_one(&scenario, &images_or_default(images), &out),
        Command::RenderAll {
            scenes,
            images,
            out,
        } => {
            let images = images_or_default(images);
            let scenes = scenes.unwrap_or_else(scenegen::scenarios_dir);
            let mut total = 0;
            for path in scenegen::scenario_files(&scenes)? {
                let s = scenegen::Scenario::load(&path)?;
                total += s.frames();
                render_one(&path, &images, &out.join(&s.name))?;
            }
            println!("{total} frames in all");
            Ok(())
        }
        Command::Preview {
            scenario,
            frame,
            images,
            out,
        } => {
            let s = scenegen::Scenario::load(&scenario)?;
            let img = scenegen::render::preview(&s, &images_or_default(images), frame)?;
            img.save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            Ok(())
        }
        Command::Truth { scenes, images } => {
            let images = images_or_default(images);
            let scenes = scenes.unwrap_or_else(scenegen::scenarios_dir);
            let mut total = 0;
            for path in scenegen::scenario_files(&scenes)? {
                let s = scenegen::Scenario::load(&path)?;
                let t = scenegen::truth_only(&s, &images)?;
                total += t.frames;
                println!("{}: {} frames, {}", s.name, t.frames, summary(&t));
            }
            println!("{total} frames in all");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match main_inner() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scenegen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
