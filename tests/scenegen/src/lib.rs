//! Semi-synthetic store-door scenes with exact ground truth.
//!
//! A scenario (`tests/scenes/NAME.toml`) scripts people walking through a
//! procedural shop entrance; [`render`] draws the frames with sprites cut
//! from the shared sample photos and writes camera-app's analytics
//! configuration and the truth (`truth.json`) beside them, for end-to-end
//! tests of detection, tracking and analytics. Shelf scenes
//! (`tests/shelf-scenes/NAME.toml`, module [`shelf`]) show shelving in an
//! aisle with stock changes and shoppers, for the shelf checks. A
//! development tool: not part of the firmware.

use std::path::{Path, PathBuf};

mod error;
pub mod geom;
pub mod look;
pub mod render;
pub mod scenario;
pub mod shelf;
pub mod sprites;
pub mod truth;
pub mod view;

pub use error::SceneError;
pub use render::render;
pub use scenario::{Scenario, scenario_files};
pub use shelf::{
    ShelfScenario, ShelfTruth, render_shelves, shelf_scenario_files, shelf_scenarios_dir,
};
pub use truth::Truth;

/// The repository's scenario directory, `tests/scenes`.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenes")
}

/// The shared sample photos: `$CAMERA_SHARED_DIR/images`, or
/// `<repo>/../shared/images`.
pub fn shared_images_dir() -> PathBuf {
    std::env::var_os("CAMERA_SHARED_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/images"),
        |d| PathBuf::from(d).join("images"),
    )
}

/// The truth of a scenario without drawing or writing anything (it needs
/// only the reference boxes beside `images_dir`, for the sprites' shapes).
pub fn truth_only(scenario: &Scenario, images_dir: &Path) -> Result<Truth, SceneError> {
    let crops = sprites::crops(images_dir)?;
    truth::compute(scenario, &crops).map_err(|problem| SceneError::Invalid {
        path: scenario.path.clone(),
        problem,
    })
}
