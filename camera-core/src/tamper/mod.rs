//! Tamper detection from cheap image statistics: lens covered, lens
//! defocused, view moved.
//!
//! Every frame, the luma plane is sampled sparsely on a coarse grid
//! (64×36 cells of 2×2 points by default: 9 216 points, each read with
//! its right and lower neighbour, of a 1080p frame's 2 million; the cost
//! is in the cache lines touched, so the sample count is what matters).
//! Per cell: the mean luma, and the RMS fine-scale gradient (differences
//! to the next pixel right and below) at the sample points.
//! RMS rather than mean absolute value lets edges, which blur flattens,
//! outweigh sensor noise, which blur does not remove.
//! From these:
//!
//! - **covered**: nearly every cell is dark (90th percentile below
//!   `dark_luma`), or the frame is featureless (the 5th–95th percentile
//!   spread of cell means is below `uniform_spread`): a hand, tape or a
//!   cap over the lens;
//! - **defocused**: the median, over the quarter of cells most textured in
//!   the reference, of gradient/brightness relative to the reference falls
//!   below `defocus_ratio`. Weakly textured cells are left out because
//!   there noise, not focus, makes the gradient. Dividing by the cell's brightness makes it
//!   insensitive to exposure changes; the median ignores the cells people
//!   walk through;
//! - **moved**: the grid is cut into blocks of 4×4 cells; a block that had
//!   structure in the reference "matches" while the normalised
//!   cross-correlation of its cell means with the reference is at least
//!   0.5 (NCC ignores gain and offset, so a ±40 % brightness change leaves
//!   it alone). The view has moved when fewer than `moved_match` of the
//!   blocks match. People cover a minority of blocks, so they cannot pull
//!   the fraction down that far; a new viewpoint changes nearly all.
//!
//! The reference is learned over the first `learn_s` seconds of
//! uncovered frames, then follows slow changes (daylight) with a time
//! constant of `adapt_s`, but only while nothing is raised or pending.
//! A condition must hold for `raise_after_s` before its event is raised
//! and be absent for `clear_after_s` before it is cleared.

// Functions on the per-frame path stay short enough to read whole
// (clippy.toml: 80 lines).
#![warn(clippy::too_many_lines)]

use serde::{Deserialize, Serialize};

use crate::frame::{Frame, FrameLayoutError, PixelFormat};

/// Cells per block side for the "moved" test.
const BLOCK: usize = 4;
/// A reference block with less spread of cell means than this (grey
/// levels) has no structure to compare.
const MIN_BLOCK_STD: f32 = 3.0;
/// NCC at or above which a block still shows the reference.
const BLOCK_NCC: f32 = 0.5;
/// Samples outside this range count as clipped: their texture says
/// nothing about focus. Limited-range video clips at 16 and 235, so the
/// range is that of limited range (full-range video loses only a little
/// of its extremes to it).
const UNCLIPPED: std::ops::RangeInclusive<u32> = 17..=234;
/// Blocks whose current mean is outside this range are under- or
/// over-exposed, not moved.
const EXPOSED: std::ops::RangeInclusive<f32> = 20.0..=230.0;
/// Brightness floor when normalising gradients, so black cells do not
/// divide by zero or amplify noise.
const MEAN_FLOOR: f32 = 16.0;
/// Reference cells count as textured above this normalised gradient
/// (and in the top quarter); below it is sensor noise.
const MIN_TEXTURE: f32 = 0.02;
/// The least evidence for a verdict.
const MIN_CELLS: usize = 16;
const MIN_BLOCKS: usize = 4;
/// Frames needed (besides `learn_s`) to finish learning.
const MIN_LEARN_FRAMES: u32 = 3;

/// Thresholds and timings, as written in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TamperConfig {
    pub enabled: bool,
    /// Grid of cells over the frame (16..=128 × 8..=72).
    pub grid_cols: u32,
    pub grid_rows: u32,
    /// Sample points per cell side (1..=8).
    pub samples_per_cell: u32,
    /// Seconds of uncovered frames to learn the reference from.
    pub learn_s: f64,
    /// A condition must hold this long before its event is raised...
    pub raise_after_s: f64,
    /// ...and be gone this long before it is cleared.
    pub clear_after_s: f64,
    /// Covered: 90 % of cells darker than this (luma code value 0..255;
    /// limited-range black is 16).
    pub dark_luma: f32,
    /// Covered: the spread (p95 − p5) of cell means is below this.
    pub uniform_spread: f32,
    /// Defocused: median sharpness relative to the reference below this.
    pub defocus_ratio: f32,
    /// Moved: the fraction of structured blocks that still match the
    /// reference is below this.
    pub moved_match: f32,
    /// While a condition is held or pending, its thresholds are raised by
    /// this fraction, so a measure hovering at a threshold does not flap.
    pub hysteresis: f32,
    /// Time constant (s) with which the reference follows slow changes
    /// while all is well; 0 freezes it after learning.
    pub adapt_s: f64,
}

impl Default for TamperConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            grid_cols: 64,
            grid_rows: 36,
            samples_per_cell: 2,
            learn_s: 5.0,
            raise_after_s: 10.0,
            clear_after_s: 5.0,
            dark_luma: 24.0,
            uniform_spread: 10.0,
            defocus_ratio: 0.5,
            moved_match: 0.4,
            hysteresis: 0.1,
            adapt_s: 600.0,
        }
    }
}

/// Why a [`TamperConfig`] was refused: every problem at once.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("tamper config rejected: {}", problems.join("; "))]
pub struct TamperConfigError {
    pub problems: Vec<String>,
}

impl TamperConfig {
    pub fn validate(&self) -> Result<(), TamperConfigError> {
        let mut p = Vec::new();
        let mut range = |name: &str, v: f64, lo: f64, hi: f64| {
            if !(v.is_finite() && (lo..=hi).contains(&v)) {
                p.push(format!("{name}: {v} is not within {lo}..{hi}"));
            }
        };
        range("grid_cols", f64::from(self.grid_cols), 16.0, 128.0);
        range("grid_rows", f64::from(self.grid_rows), 8.0, 72.0);
        range(
            "samples_per_cell",
            f64::from(self.samples_per_cell),
            1.0,
            8.0,
        );
        range("learn_s", self.learn_s, 0.0, 600.0);
        range("raise_after_s", self.raise_after_s, 0.0, 3600.0);
        range("clear_after_s", self.clear_after_s, 0.0, 3600.0);
        range("dark_luma", f64::from(self.dark_luma), 0.0, 255.0);
        range("uniform_spread", f64::from(self.uniform_spread), 0.0, 255.0);
        range("defocus_ratio", f64::from(self.defocus_ratio), 0.0, 1.0);
        range("moved_match", f64::from(self.moved_match), 0.0, 1.0);
        range("hysteresis", f64::from(self.hysteresis), 0.0, 0.5);
        range("adapt_s", self.adapt_s, 0.0, 7.0 * 86_400.0);
        if p.is_empty() {
            Ok(())
        } else {
            Err(TamperConfigError { problems: p })
        }
    }
}

/// What was tampered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TamperKind {
    Covered,
    Defocused,
    Moved,
}

/// A change of one tamper condition, reported once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TamperEvent {
    pub kind: TamperKind,
    /// Raised (true) or cleared (false).
    pub raised: bool,
    /// When the change was decided (the frame time after the persistence
    /// delay), µs since the epoch.
    pub time_us: u64,
}

/// The last frame's measures, for health reports and tuning.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct TamperMeasures {
    /// Mean of the cell means (luma 0..255).
    pub luma_mean: f32,
    /// 90th percentile of cell means.
    pub luma_p90: f32,
    /// p95 − p5 of cell means.
    pub luma_spread: f32,
    /// Median sharpness relative to the reference (1 = as sharp).
    pub sharpness_ratio: Option<f32>,
    /// Fraction of structured blocks that match the reference.
    pub view_match: Option<f32>,
}

/// The current state, for health reports.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct TamperStatus {
    pub enabled: bool,
    /// The reference is still being learned: only "covered" is judged.
    pub learning: bool,
    pub covered: bool,
    pub defocused: bool,
    pub moved: bool,
    /// `None` before the first frame.
    pub measures: Option<TamperMeasures>,
}

/// Why a frame could not be examined (it is skipped; state is kept).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TamperError {
    #[error("frame {seq}: {source}")]
    Layout {
        seq: u64,
        #[source]
        source: FrameLayoutError,
    },
    #[error("frame {seq}: {format} frames must be decoded before tamper checks")]
    Compressed { seq: u64, format: PixelFormat },
    #[error("frame {seq}: {width}x{height} is too small for tamper checks (16x16 at least)")]
    TooSmall { seq: u64, width: u32, height: u32 },
}

/// Whether the tamper checks can read `frame`.
fn readable(frame: &Frame) -> Result<(), TamperError> {
    let seq = frame.seq;
    if frame.format == PixelFormat::Mjpeg {
        return Err(TamperError::Compressed {
            seq,
            format: frame.format,
        });
    }
    frame
        .check()
        .map_err(|source| TamperError::Layout { seq, source })?;
    if frame.width < 16 || frame.height < 16 {
        return Err(TamperError::TooSmall {
            seq,
            width: frame.width,
            height: frame.height,
        });
    }
    Ok(())
}

/// Persistence of one condition.
#[derive(Debug, Clone, Copy, Default)]
struct Persist {
    raised: bool,
    /// Since when the condition has disagreed with `raised`.
    since_us: Option<u64>,
}

impl Persist {
    /// Whether the condition is currently believed present: raised and not
    /// being cleared, or not raised but being raised.
    fn leaning(&self) -> bool {
        self.raised != self.since_us.is_some()
    }

    /// Feed one frame's verdict (`None`: cannot tell); returns the new
    /// state when it changes.
    fn update(
        &mut self,
        cond: Option<bool>,
        now_us: u64,
        raise_us: u64,
        clear_us: u64,
    ) -> Option<bool> {
        let Some(cond) = cond else {
            // No evidence either way: a disagreement must start afresh.
            self.since_us = None;
            return None;
        };
        if cond == self.raised {
            self.since_us = None;
            return None;
        }
        let since = match self.since_us {
            // A clock stepped back restarts the wait.
            Some(s) if s <= now_us => s,
            _ => {
                self.since_us = Some(now_us);
                now_us
            }
        };
        let need = if cond { raise_us } else { clear_us };
        if now_us - since >= need {
            self.raised = cond;
            self.since_us = None;
            Some(cond)
        } else {
            None
        }
    }
}

/// Where the samples are in a frame of one size and format.
#[derive(Debug)]
struct Geometry {
    width: u32,
    height: u32,
    stride: u32,
    format: PixelFormat,
    /// Bytes from one pixel's luma to the next's.
    bpp: usize,
    /// Byte offset of each sample column (cols × s), within a row.
    col_off: Vec<usize>,
    /// Byte offset of each sample row (rows × s).
    row_off: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Learning { start_us: Option<u64>, frames: u32 },
    Ready,
}

/// The tamper state machine; see the module documentation.
#[derive(Debug)]
pub struct TamperDetector {
    cfg: TamperConfig,
    cols: usize,
    rows: usize,
    s: usize,
    geom: Option<Geometry>,
    /// Per cell: mean luma, RMS gradient per sample, clipped samples.
    cur_mean: Vec<f32>,
    cur_grad: Vec<f32>,
    cur_clip: Vec<u16>,
    ref_mean: Vec<f32>,
    ref_grad: Vec<f32>,
    /// Normalised reference gradient above which a cell is textured.
    texture_floor: f32,
    scratch: Vec<f32>,
    phase: Phase,
    last_us: Option<u64>,
    covered: Persist,
    defocused: Persist,
    moved: Persist,
    measures: Option<TamperMeasures>,
}

impl TamperDetector {
    pub fn new(cfg: TamperConfig) -> Result<Self, TamperConfigError> {
        cfg.validate()?;
        let (cols, rows) = (cfg.grid_cols as usize, cfg.grid_rows as usize);
        let n = cols * rows;
        Ok(Self {
            cols,
            rows,
            s: cfg.samples_per_cell as usize,
            geom: None,
            cur_mean: vec![0.0; n],
            cur_grad: vec![0.0; n],
            cur_clip: vec![0; n],
            ref_mean: vec![0.0; n],
            ref_grad: vec![0.0; n],
            texture_floor: MIN_TEXTURE,
            scratch: Vec::with_capacity(n),
            phase: Phase::Learning {
                start_us: None,
                frames: 0,
            },
            last_us: None,
            covered: Persist::default(),
            defocused: Persist::default(),
            moved: Persist::default(),
            measures: None,
            cfg,
        })
    }

    pub fn config(&self) -> &TamperConfig {
        &self.cfg
    }

    pub fn status(&self) -> TamperStatus {
        TamperStatus {
            enabled: self.cfg.enabled,
            learning: matches!(self.phase, Phase::Learning { .. }),
            covered: self.covered.raised,
            defocused: self.defocused.raised,
            moved: self.moved.raised,
            measures: self.measures,
        }
    }

    /// Forget the reference and learn it again from the next frames (after
    /// an installer re-aims the camera). Raised "defocused" and "moved"
    /// events are cleared (pushed to `events`); "covered" needs no
    /// reference and stands.
    pub fn relearn(&mut self, now_us: u64, events: &mut Vec<TamperEvent>) {
        self.phase = Phase::Learning {
            start_us: None,
            frames: 0,
        };
        for (kind, p) in [
            (TamperKind::Defocused, &mut self.defocused),
            (TamperKind::Moved, &mut self.moved),
        ] {
            if p.raised {
                events.push(TamperEvent {
                    kind,
                    raised: false,
                    time_us: now_us,
                });
            }
            *p = Persist::default();
        }
    }

    /// Examine one frame taken at `now_us` (µs); changes of state are
    /// pushed to `events`. Allocates only when the frame size or format
    /// changes (and then relearns).
    pub fn observe(
        &mut self,
        frame: &Frame,
        now_us: u64,
        events: &mut Vec<TamperEvent>,
    ) -> Result<(), TamperError> {
        if !self.cfg.enabled {
            return Ok(());
        }
        readable(frame)?;
        let same = self.geom.as_ref().is_some_and(|g| {
            (g.width, g.height, g.stride, g.format)
                == (frame.width, frame.height, frame.stride, frame.format)
        });
        if !same {
            self.geom = Some(self.geometry(frame));
            if self.last_us.is_some() {
                // A new size or format invalidates the reference.
                self.relearn(now_us, events);
            }
        }
        self.sample(frame);
        let dt_us = self.last_us.map_or(0, |t| now_us.saturating_sub(t));
        self.last_us = Some(now_us);

        let (luma_mean, luma_p90, luma_spread) = self.brightness();
        let h = 1.0 + self.cfg.hysteresis;
        let relax = |p: &Persist| if p.leaning() { h } else { 1.0 };
        let k = relax(&self.covered);
        let covered =
            luma_p90 < self.cfg.dark_luma * k || luma_spread < self.cfg.uniform_spread * k;

        let (mut sharpness_ratio, mut view_match) = (None, None);
        match self.phase {
            Phase::Learning { start_us, frames } => {
                // A covered lens teaches nothing about the view.
                if !covered {
                    self.learn(start_us, frames, now_us);
                }
            }
            Phase::Ready => {
                sharpness_ratio = self.sharpness();
                view_match = self.view_match();
            }
        }
        let moved = if covered {
            None
        } else {
            let k = relax(&self.moved);
            view_match.map(|m| m < self.cfg.moved_match * k)
        };
        // A covered lens or a new view says nothing about focus.
        let defocused = if covered || moved == Some(true) {
            None
        } else {
            let k = relax(&self.defocused);
            sharpness_ratio.map(|r| r < self.cfg.defocus_ratio * k)
        };
        self.measures = Some(TamperMeasures {
            luma_mean,
            luma_p90,
            luma_spread,
            sharpness_ratio,
            view_match,
        });

        self.decide([Some(covered), defocused, moved], now_us, events);
        self.adapt(dt_us);
        Ok(())
    }

    /// Each condition's persistence: raised or cleared once it has held
    /// long enough (`None`: this frame says nothing about it).
    fn decide(
        &mut self,
        conditions: [Option<bool>; 3],
        now_us: u64,
        events: &mut Vec<TamperEvent>,
    ) {
        let raise_us = secs_to_us(self.cfg.raise_after_s);
        let clear_us = secs_to_us(self.cfg.clear_after_s);
        let [covered, defocused, moved] = conditions;
        for (kind, p, cond) in [
            (TamperKind::Covered, &mut self.covered, covered),
            (TamperKind::Defocused, &mut self.defocused, defocused),
            (TamperKind::Moved, &mut self.moved, moved),
        ] {
            if let Some(raised) = p.update(cond, now_us, raise_us, clear_us) {
                events.push(TamperEvent {
                    kind,
                    raised,
                    time_us: now_us,
                });
            }
        }
    }

    /// While nothing is raised or pending, the reference follows slow
    /// changes of the view (daylight, a moved display).
    fn adapt(&mut self, dt_us: u64) {
        let quiet = [&self.covered, &self.defocused, &self.moved]
            .iter()
            .all(|p| !p.raised && p.since_us.is_none());
        if matches!(self.phase, Phase::Ready) && quiet && self.cfg.adapt_s > 0.0 {
            let a = ((dt_us as f64 / 1e6) / self.cfg.adapt_s).min(1.0) as f32;
            for (r, c) in self.ref_mean.iter_mut().zip(&self.cur_mean) {
                *r += a * (c - *r);
            }
            for (r, c) in self.ref_grad.iter_mut().zip(&self.cur_grad) {
                *r += a * (c - *r);
            }
        }
    }

    /// Sample positions for this frame: `s` points per cell side, evenly
    /// spread, never on the last column or row (the gradient looks one
    /// pixel right and down).
    fn geometry(&self, frame: &Frame) -> Geometry {
        let bpp = match frame.format {
            PixelFormat::Nv12 | PixelFormat::Mjpeg => 1,
            PixelFormat::Yuyv => 2,
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => 3,
        };
        let spread = |n: usize, extent: u32| -> Vec<usize> {
            let span = extent as usize - 1;
            (0..n).map(|j| (2 * j + 1) * span / (2 * n)).collect()
        };
        Geometry {
            width: frame.width,
            height: frame.height,
            stride: frame.stride,
            format: frame.format,
            bpp,
            col_off: spread(self.cols * self.s, frame.width)
                .into_iter()
                .map(|x| x * bpp)
                .collect(),
            row_off: spread(self.rows * self.s, frame.height)
                .into_iter()
                .map(|y| y * frame.stride as usize)
                .collect(),
        }
    }

    fn sample(&mut self, frame: &Frame) {
        let Some(g) = &self.geom else { return };
        let out = Cells {
            mean: &mut self.cur_mean,
            grad: &mut self.cur_grad,
            clip: &mut self.cur_clip,
        };
        let (d, s) = (frame.data.as_slice(), self.s);
        // One monomorphised loop per layout keeps the inner loop branch-free.
        match frame.format {
            PixelFormat::Nv12 | PixelFormat::Mjpeg | PixelFormat::Yuyv => {
                sample_grid(d, g, s, |d, o| u32::from(d[o]), out);
            }
            PixelFormat::Rgb24 => {
                sample_grid(d, g, s, |d, o| luma(d[o], d[o + 1], d[o + 2]), out);
            }
            PixelFormat::Bgr24 => {
                sample_grid(d, g, s, |d, o| luma(d[o + 2], d[o + 1], d[o]), out);
            }
        }
    }

    /// Mean, 90th percentile and p95 − p5 spread of the cell means.
    fn brightness(&mut self) -> (f32, f32, f32) {
        let n = self.cur_mean.len();
        let mean = self.cur_mean.iter().sum::<f32>() / n as f32;
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.cur_mean);
        let p5 = quantile(&mut self.scratch, 0.05);
        let p90 = quantile(&mut self.scratch, 0.90);
        let p95 = quantile(&mut self.scratch, 0.95);
        (mean, p90, p95 - p5)
    }

    fn learn(&mut self, start_us: Option<u64>, frames: u32, now_us: u64) {
        let start = start_us.unwrap_or(now_us);
        let w = 1.0 / (frames as f32 + 1.0);
        for (r, c) in self.ref_mean.iter_mut().zip(&self.cur_mean) {
            *r += w * (c - *r);
        }
        for (r, c) in self.ref_grad.iter_mut().zip(&self.cur_grad) {
            *r += w * (c - *r);
        }
        let frames = frames + 1;
        if frames >= MIN_LEARN_FRAMES
            && now_us.saturating_sub(start) >= secs_to_us(self.cfg.learn_s)
        {
            // Textured: the top quarter of the cells, and above noise.
            self.scratch.clear();
            self.scratch.extend(
                self.ref_grad
                    .iter()
                    .zip(&self.ref_mean)
                    .map(|(g, m)| g / m.max(MEAN_FLOOR)),
            );
            self.texture_floor = quantile(&mut self.scratch, 0.75).max(MIN_TEXTURE);
            self.phase = Phase::Ready;
        } else {
            self.phase = Phase::Learning {
                start_us: Some(start),
                frames,
            };
        }
    }

    /// Median over well-exposed textured cells of the current normalised
    /// gradient relative to the reference's.
    fn sharpness(&mut self) -> Option<f32> {
        let max_clip = (self.s * self.s / 4) as u16;
        self.scratch.clear();
        for i in 0..self.cur_mean.len() {
            let reference = self.ref_grad[i] / self.ref_mean[i].max(MEAN_FLOOR);
            if reference < self.texture_floor || self.cur_clip[i] > max_clip {
                continue;
            }
            let current = self.cur_grad[i] / self.cur_mean[i].max(MEAN_FLOOR);
            self.scratch.push(current / reference);
        }
        (self.scratch.len() >= MIN_CELLS).then(|| quantile(&mut self.scratch, 0.5))
    }

    /// Fraction of structured, well-exposed blocks whose cell means still
    /// correlate with the reference.
    fn view_match(&self) -> Option<f32> {
        let (bx_n, by_n) = (self.cols / BLOCK, self.rows / BLOCK);
        let (mut seen, mut matched) = (0usize, 0usize);
        for by in 0..by_n {
            let rows = by * self.rows / by_n..(by + 1) * self.rows / by_n;
            for bx in 0..bx_n {
                let cols = bx * self.cols / bx_n..(bx + 1) * self.cols / bx_n;
                let cells = || {
                    rows.clone()
                        .flat_map(|r| cols.clone().map(move |c| r * self.cols + c))
                };
                let n = cells().count() as f32;
                let (mut sr, mut sc) = (0.0f32, 0.0f32);
                for i in cells() {
                    sr += self.ref_mean[i];
                    sc += self.cur_mean[i];
                }
                let (mr, mc) = (sr / n, sc / n);
                let (mut vr, mut vc, mut cov) = (0.0f32, 0.0f32, 0.0f32);
                for i in cells() {
                    let (a, b) = (self.ref_mean[i] - mr, self.cur_mean[i] - mc);
                    vr += a * a;
                    vc += b * b;
                    cov += a * b;
                }
                if (vr / n).sqrt() < MIN_BLOCK_STD || !EXPOSED.contains(&mc) {
                    continue;
                }
                seen += 1;
                // A flat current block (std < 0.5 level) matches nothing.
                if vc / n >= 0.25 && cov / (vr * vc).sqrt() >= BLOCK_NCC {
                    matched += 1;
                }
            }
        }
        (seen >= MIN_BLOCKS).then(|| matched as f32 / seen as f32)
    }
}

/// Where one frame's per-cell statistics go.
struct Cells<'a> {
    mean: &'a mut [f32],
    grad: &'a mut [f32],
    clip: &'a mut [u16],
}

/// Sample every cell: `s`×`s` points, each with its right and lower
/// neighbour for the gradient. The frame has passed [`Frame::check`] and
/// the offsets stay one pixel and one row short of its edges.
#[inline(always)]
fn sample_grid(
    d: &[u8],
    g: &Geometry,
    s: usize,
    luma_at: impl Fn(&[u8], usize) -> u32,
    out: Cells<'_>,
) {
    let (bpp, stride) = (g.bpp, g.stride as usize);
    let cols = g.col_off.len() / s;
    let per_cell = (s * s) as f32;
    for (r, rows) in g.row_off.chunks_exact(s).enumerate() {
        for (c, xs) in g.col_off.chunks_exact(s).enumerate() {
            let (mut sum, mut grad, mut clip) = (0u32, 0u32, 0u16);
            for &ro in rows {
                for &xo in xs {
                    let o = ro + xo;
                    let v = luma_at(d, o);
                    sum += v;
                    let gx = v.abs_diff(luma_at(d, o + bpp));
                    let gy = v.abs_diff(luma_at(d, o + stride));
                    grad += gx * gx + gy * gy;
                    clip += u16::from(!UNCLIPPED.contains(&v));
                }
            }
            let i = r * cols + c;
            out.mean[i] = sum as f32 / per_cell;
            out.grad[i] = (grad as f32 / per_cell).sqrt();
            out.clip[i] = clip;
        }
    }
}

/// BT.601 luma from 8-bit RGB, in integers.
#[inline(always)]
fn luma(r: u8, g: u8, b: u8) -> u32 {
    (77 * u32::from(r) + 150 * u32::from(g) + 29 * u32::from(b) + 128) >> 8
}

/// The `q` quantile of `v` (non-empty), reordering it.
fn quantile(v: &mut [f32], q: f32) -> f32 {
    let k = ((v.len() - 1) as f32 * q).round() as usize;
    *v.select_nth_unstable_by(k, f32::total_cmp).1
}

fn secs_to_us(s: f64) -> u64 {
    (s * 1e6).round() as u64
}

#[cfg(test)]
mod tests;
