//! A coarse grid of person-seconds per cell: numbers, never imagery.

use crate::geom::Point;

/// Person-seconds per cell, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    cols: u32,
    rows: u32,
    cells: Vec<f32>,
}

impl Heatmap {
    pub fn new(cols: u32, rows: u32) -> Self {
        Self {
            cols,
            rows,
            cells: vec![0.0; cols as usize * rows as usize],
        }
    }

    /// Add `dt` seconds of one person standing at normalised point `p`.
    /// Points outside the image are ignored.
    pub fn add(&mut self, p: Point, dt: f32) {
        if !(0.0..=1.0).contains(&p.x) || !(0.0..=1.0).contains(&p.y) {
            return;
        }
        let col = ((p.x * self.cols as f32) as u32).min(self.cols - 1);
        let row = ((p.y * self.rows as f32) as u32).min(self.rows - 1);
        self.cells[(row * self.cols + col) as usize] += dt;
    }

    pub fn cols(&self) -> u32 {
        self.cols
    }

    pub fn rows(&self) -> u32 {
        self.rows
    }

    pub fn cells(&self) -> &[f32] {
        &self.cells
    }

    pub fn total(&self) -> f32 {
        self.cells.iter().sum()
    }

    /// Start a new bin.
    pub fn reset(&mut self) {
        self.cells.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_person_seconds_in_the_right_cell() {
        let mut h = Heatmap::new(4, 2);
        for _ in 0..10 {
            h.add(Point::new(0.9, 0.9), 0.1); // bottom-right cell
        }
        h.add(Point::new(0.0, 0.0), 0.5); // top-left
        h.add(Point::new(1.0, 1.0), 0.5); // the far edge belongs to the last cell
        h.add(Point::new(1.2, 0.5), 9.0); // outside: ignored
        assert!((h.cells()[7] - 1.5).abs() < 1e-5, "{:?}", h.cells());
        assert!((h.cells()[0] - 0.5).abs() < 1e-6);
        assert!((h.total() - 2.0).abs() < 1e-5);
        h.reset();
        assert_eq!(h.total(), 0.0);
    }
}
