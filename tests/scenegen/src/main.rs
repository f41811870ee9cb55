//! `scenegen`: render scenario files (store-door scenes, and `shelf-*` for
//! shelf scenes) into frames, analytics.toml and truth.json.

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
    /// Render one shelf scenario into OUT (frames/, analytics.toml, truth.json).
    ShelfRender {
        scenario: PathBuf,
        #[arg(long)]
        images: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Render every shelf scenario of a directory into OUT/<name>/.
    ShelfRenderAll {
        /// Scenario directory (default: the repository's tests/shelf-scenes).
        #[arg(long)]
        scenes: Option<PathBuf>,
        #[arg(long)]
        images: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write one shelf frame as PNG with the facings (coloured by their
    /// true state), front zones and true shopper boxes drawn on it.
    ShelfPreview {
        scenario: PathBuf,
        /// Frame number; or give --t.
        #[arg(long, conflicts_with = "t")]
        frame: Option<usize>,
        /// Time in seconds (the frame at or just after it).
        #[arg(long)]
        t: Option<f64>,
        #[arg(long)]
        images: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print each shelf scenario's truth summary without rendering.
    ShelfTruth {
        #[arg(long)]
        scenes: Option<PathBuf>,
        #[arg(long)]
        images: Option<PathBuf>,
    },
}

fn shelf_summary(t: &scenegen::ShelfTruth) -> String {
    let mut parts = Vec::new();
    for s in &t.shelves {
        let changes: usize = s.facings.iter().map(|f| f.fills.len() - 1).sum();
        let empty = s
            .facings
            .iter()
            .filter(|f| f.fills.iter().any(|c| c.fill < 0.2))
            .count();
        parts.push(format!(
            "{} {}x{}: {changes} fill changes, {empty} facings emptied, {} stops, {} takes",
            s.name,
            s.grid[0],
            s.grid[1],
            s.stops.len(),
            s.takes.len()
        ));
    }
    parts.push(format!("{} disturbances", t.disturbances.len()));
    parts.join("; ")
}

fn shelf_render_one(path: &Path, images: &Path, out: &Path) -> anyhow::Result<()> {
    let s = scenegen::ShelfScenario::load(path)?;
    let truth = scenegen::render_shelves(&s, images, out)
        .with_context(|| format!("rendering {}", path.display()))?;
    println!(
        "{}: {} frames -> {} ({})",
        s.name,
        truth.frames,
        out.display(),
        shelf_summary(&truth)
    );
    Ok(())
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
        Command::ShelfRender {
            scenario,
            images,
            out,
        } => shelf_render_one(&scenario, &images_or_default(images), &out),
        Command::ShelfRenderAll {
            scenes,
            images,
            out,
        } => {
            let images = images_or_default(images);
            let scenes = scenes.unwrap_or_else(scenegen::shelf_scenarios_dir);
            let mut total = 0;
            for path in scenegen::shelf_scenario_files(&scenes)? {
                let s = scenegen::ShelfScenario::load(&path)?;
                total += s.frames();
                shelf_render_one(&path, &images, &out.join(&s.name))?;
            }
            println!("{total} frames in all");
            Ok(())
        }
        Command::ShelfPreview {
            scenario,
            frame,
            t,
            images,
            out,
        } => {
            let s = scenegen::ShelfScenario::load(&scenario)?;
            let frame = match (frame, t) {
                (Some(f), _) => f,
                (None, Some(t)) => (t * f64::from(s.fps)).ceil().max(0.0) as usize,
                (None, None) => 0,
            };
            anyhow::ensure!(
                frame < s.frames(),
                "frame {frame}: the scene has {} frames",
                s.frames()
            );
            let img = scenegen::shelf::shelf_preview(&s, &images_or_default(images), frame)?;
            img.save(&out)
                .with_context(|| format!("writing {}", out.display()))?;
            Ok(())
        }
        Command::ShelfTruth { scenes, images } => {
            let images = images_or_default(images);
            let scenes = scenes.unwrap_or_else(scenegen::shelf_scenarios_dir);
            let mut total = 0;
            for path in scenegen::shelf_scenario_files(&scenes)? {
                let s = scenegen::ShelfScenario::load(&path)?;
                let t = scenegen::shelf::shelf_truth_only(&s, &images)?;
                total += t.frames;
                println!("{}: {} frames, {}", s.name, t.frames, shelf_summary(&t));
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
