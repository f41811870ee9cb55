//! Shelf layout: shelves, their facings and front zones, in normalised
//! image coordinates (0..1, y down) like lines and zones.
//!
//! A shelf is divided either by a `grid = [rows, columns]` (the shelf must
//! then be a quadrilateral, corners in order starting top-left, and the
//! facings follow its perspective) or by explicit facing polygons, which
//! must lie inside the shelf, must not overlap, and must tile it: a gap
//! would be a part of the shelf nobody watches.

use std::collections::HashSet;

use serde::Deserialize;

use crate::check::{check_name, points};
use crate::geom::Point;
use crate::geom::Polygon;

/// At most this many shelves per camera, and facings per shelf.
pub const MAX_SHELVES: usize = 32;
pub const MAX_FACINGS: usize = 64;

/// Overlap or gap tolerated between facings, as a share of the shelf's
/// area: installers draw by hand on a snapshot.
const TILE_TOLERANCE: f32 = 0.02;
/// Cells per side of the grid that measures overlaps and gaps.
const RASTER: usize = 200;

/// One shelf as configured.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShelf {
    pub name: String,
    pub polygon: Vec<[f32; 2]>,
    /// `[rows, columns]` of equal facings.
    #[serde(default)]
    pub grid: Option<[u32; 2]>,
    /// Explicit facings instead of a grid.
    #[serde(default)]
    pub facings: Vec<RawFacing>,
    /// Where a shopper stands to reach the shelf.
    pub front: Vec<[f32; 2]>,
}

/// One explicit facing.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFacing {
    pub name: String,
    pub polygon: Vec<[f32; 2]>,
}

/// A validated facing.
#[derive(Debug, Clone, PartialEq)]
pub struct Facing {
    pub name: String,
    pub polygon: Polygon,
}

/// A validated shelf.
#[derive(Debug, Clone, PartialEq)]
pub struct Shelf {
    pub name: String,
    pub polygon: Polygon,
    pub facings: Vec<Facing>,
    pub front: Polygon,
}

/// Validate `raw` shelves; every problem is reported, each with its path
/// (`shelves[1].facings[3].polygon: …`).
pub fn validate(raw: &[RawShelf]) -> Result<Vec<Shelf>, Vec<String>> {
    let mut p = Vec::new();
    if raw.len() > MAX_SHELVES {
        p.push(format!(
            "shelves: {} shelves, at most {MAX_SHELVES}",
            raw.len()
        ));
    }
    let mut names = HashSet::new();
    let mut shelves = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let path = format!("shelves[{i}]");
        check_name(&s.name, &path, &mut names, &mut p);
        let polygon = polygon_at(&s.polygon, &format!("{path}.polygon"), &mut p);
        let front = polygon_at(&s.front, &format!("{path}.front"), &mut p);
        let facings = match (s.grid, s.facings.is_empty()) {
            (Some(_), false) => {
                p.push(format!("{path}: give either grid or facings, not both"));
                None
            }
            (None, true) => {
                p.push(format!("{path}: needs a grid = [rows, columns] or facings"));
                None
            }
            (Some(grid), true) => grid_facings(&s.polygon, grid, &path, &mut p),
            (None, false) => explicit_facings(s, polygon.as_ref(), &path, &mut p),
        };
        if let (Some(polygon), Some(front), Some(facings)) = (polygon, front, facings) {
            shelves.push(Shelf {
                name: s.name.clone(),
                polygon,
                facings,
                front,
            });
        }
    }
    if p.is_empty() { Ok(shelves) } else { Err(p) }
}

fn polygon_at(raw: &[[f32; 2]], path: &str, p: &mut Vec<String>) -> Option<Polygon> {
    let pts = points(raw, path, p)?;
    Polygon::new(pts)
        .map_err(|e| p.push(format!("{path}: {e}")))
        .ok()
}

/// Facings of a quadrilateral shelf split into `rows` × `cols`, following
/// its perspective (bilinear in the corners).
fn grid_facings(
    raw: &[[f32; 2]],
    [rows, cols]: [u32; 2],
    path: &str,
    p: &mut Vec<String>,
) -> Option<Vec<Facing>> {
    let n = rows as usize * cols as usize;
    if rows == 0 || cols == 0 || n > MAX_FACINGS {
        p.push(format!(
            "{path}.grid: [{rows}, {cols}] must give 1 to {MAX_FACINGS} facings"
        ));
        return None;
    }
    let [a, b, c, d] = raw else {
        p.push(format!(
            "{path}.grid: a grid needs a shelf of 4 corners (top-left, top-right, \
             bottom-right, bottom-left), this one has {}",
            raw.len()
        ));
        return None;
    };
    let at = |u: f32, v: f32| {
        let top = [a[0] + (b[0] - a[0]) * u, a[1] + (b[1] - a[1]) * u];
        let bottom = [d[0] + (c[0] - d[0]) * u, d[1] + (c[1] - d[1]) * u];
        Point::new(
            top[0] + (bottom[0] - top[0]) * v,
            top[1] + (bottom[1] - top[1]) * v,
        )
    };
    let mut facings = Vec::with_capacity(n);
    for r in 0..rows {
        for col in 0..cols {
            let (u0, u1) = (col as f32 / cols as f32, (col + 1) as f32 / cols as f32);
            let (v0, v1) = (r as f32 / rows as f32, (r + 1) as f32 / rows as f32);
            let quad = vec![at(u0, v0), at(u1, v0), at(u1, v1), at(u0, v1)];
            match Polygon::new(quad) {
                Ok(polygon) => facings.push(Facing {
                    name: format!("r{}c{}", r + 1, col + 1),
                    polygon,
                }),
                Err(e) => {
                    p.push(format!("{path}.grid: facing r{}c{}: {e}", r + 1, col + 1));
                    return None;
                }
            }
        }
    }
    Some(facings)
}

fn explicit_facings(
    s: &RawShelf,
    shelf: Option<&Polygon>,
    path: &str,
    p: &mut Vec<String>,
) -> Option<Vec<Facing>> {
    if s.facings.len() > MAX_FACINGS {
        p.push(format!(
            "{path}.facings: {} facings, at most {MAX_FACINGS}",
            s.facings.len()
        ));
        return None;
    }
    let before = p.len();
    let mut names = HashSet::new();
    let mut facings = Vec::new();
    for (j, f) in s.facings.iter().enumerate() {
        let fpath = format!("{path}.facings[{j}]");
        check_name(&f.name, &fpath, &mut names, p);
        if let Some(polygon) = polygon_at(&f.polygon, &format!("{fpath}.polygon"), p) {
            facings.push(Facing {
                name: f.name.clone(),
                polygon,
            });
        }
    }
    if p.len() > before {
        return None;
    }
    let shelf = shelf?;
    tiling(shelf, &facings, path, p);
    (p.len() == before).then_some(facings)
}

/// Check on a raster over the shelf and its facings that the facings stay
/// inside the shelf, do not overlap, and leave no gap.
fn tiling(shelf: &Polygon, facings: &[Facing], path: &str, p: &mut Vec<String>) {
    let (mut lo, mut hi) = bounds(shelf);
    for f in facings {
        let (a, b) = bounds(&f.polygon);
        lo = Point::new(lo.x.min(a.x), lo.y.min(a.y));
        hi = Point::new(hi.x.max(b.x), hi.y.max(b.y));
    }
    let (w, h) = (hi.x - lo.x, hi.y - lo.y);
    let mut inside_shelf = 0usize;
    let mut gaps = 0usize;
    // Per facing: cells in it, and those of them outside the shelf.
    let mut cells = vec![(0usize, 0usize); facings.len()];
    let mut overlap = vec![vec![0usize; facings.len()]; facings.len()];
    let mut hits = Vec::with_capacity(4);
    for gy in 0..RASTER {
        for gx in 0..RASTER {
            let pt = Point::new(
                lo.x + w * (gx as f32 + 0.5) / RASTER as f32,
                lo.y + h * (gy as f32 + 0.5) / RASTER as f32,
            );
            let in_shelf = shelf.contains(pt);
            hits.clear();
            hits.extend((0..facings.len()).filter(|&k| facings[k].polygon.contains(pt)));
            if in_shelf {
                inside_shelf += 1;
                gaps += usize::from(hits.is_empty());
            }
            for &k in &hits {
                cells[k].0 += 1;
                cells[k].1 += usize::from(!in_shelf);
            }
            for (x, &a) in hits.iter().enumerate() {
                for &b in &hits[x + 1..] {
                    overlap[a][b] += 1;
                }
            }
        }
    }
    let share = |n: usize, of: usize| n as f32 / of.max(1) as f32;
    for (k, &(all, out)) in cells.iter().enumerate() {
        if share(out, all) > TILE_TOLERANCE {
            p.push(format!(
                "{path}.facings[{k}]: {:.0} % of it lies outside the shelf",
                100.0 * share(out, all)
            ));
        }
    }
    for (a, row) in overlap.iter().enumerate() {
        for (b, &n) in row.iter().enumerate() {
            if share(n, inside_shelf) > TILE_TOLERANCE {
                p.push(format!(
                    "{path}.facings[{a}] and facings[{b}] overlap ({} and {})",
                    facings[a].name, facings[b].name
                ));
            }
        }
    }
    if share(gaps, inside_shelf) > TILE_TOLERANCE {
        p.push(format!(
            "{path}.facings: do not tile the shelf: {:.0} % of it is in no facing",
            100.0 * share(gaps, inside_shelf)
        ));
    }
}

fn bounds(poly: &Polygon) -> (Point, Point) {
    let mut lo = Point::new(f32::MAX, f32::MAX);
    let mut hi = Point::new(f32::MIN, f32::MIN);
    for q in poly.points() {
        lo = Point::new(lo.x.min(q.x), lo.y.min(q.y));
        hi = Point::new(hi.x.max(q.x), hi.y.max(q.y));
    }
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shelf(extra: &str) -> Result<Vec<Shelf>, Vec<String>> {
        #[derive(Deserialize)]
        struct Doc {
            shelves: Vec<RawShelf>,
        }
        let text = format!(
            "[[shelves]]\nname = \"cereal\"\npolygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.4], [0.1, 0.4]]\n\
             front = [[0.1, 0.4], [0.5, 0.4], [0.5, 0.6], [0.1, 0.6]]\n{extra}"
        );
        let doc: Doc = toml::from_str(&text).map_err(|e| vec![e.to_string()])?;
        validate(&doc.shelves)
    }

    #[test]
    fn a_grid_follows_the_shelf_and_names_its_facings() {
        let s = shelf("grid = [2, 4]\n").expect("valid");
        let f = &s[0].facings;
        assert_eq!(f.len(), 8);
        assert_eq!((f[0].name.as_str(), f[7].name.as_str()), ("r1c1", "r2c4"));
        // r1c1 is the top-left eighth: (0.1..0.2, 0.1..0.25).
        assert!(f[0].polygon.contains(Point::new(0.15, 0.2)));
        assert!(!f[0].polygon.contains(Point::new(0.25, 0.2)));
        assert!(f[7].polygon.contains(Point::new(0.45, 0.35)));
    }

    #[test]
    fn explicit_facings_that_tile_the_shelf_are_accepted() {
        let s = shelf(
            "[[shelves.facings]]\nname = \"left\"\npolygon = [[0.1, 0.1], [0.3, 0.1], [0.3, 0.4], [0.1, 0.4]]\n\
             [[shelves.facings]]\nname = \"right\"\npolygon = [[0.3, 0.1], [0.5, 0.1], [0.5, 0.4], [0.3, 0.4]]\n",
        )
        .expect("valid");
        assert_eq!(s[0].facings.len(), 2);
    }

    #[test]
    fn overlapping_facings_gaps_and_strays_are_named() {
        let e = shelf(
            "[[shelves.facings]]\nname = \"a\"\npolygon = [[0.1, 0.1], [0.35, 0.1], [0.35, 0.4], [0.1, 0.4]]\n\
             [[shelves.facings]]\nname = \"b\"\npolygon = [[0.25, 0.1], [0.5, 0.1], [0.5, 0.4], [0.25, 0.4]]\n",
        )
        .expect_err("overlap");
        assert!(
            e.iter()
                .any(|m| m.contains("facings[0] and facings[1] overlap (a and b)")),
            "{e:?}"
        );

        let e = shelf(
            "[[shelves.facings]]\nname = \"a\"\npolygon = [[0.1, 0.1], [0.25, 0.1], [0.25, 0.4], [0.1, 0.4]]\n\
             [[shelves.facings]]\nname = \"b\"\npolygon = [[0.35, 0.1], [0.5, 0.1], [0.5, 0.4], [0.35, 0.4]]\n",
        )
        .expect_err("gap");
        assert!(
            e.iter().any(|m| m.contains("do not tile the shelf: 25 %")),
            "{e:?}"
        );

        let e = shelf(
            "[[shelves.facings]]\nname = \"a\"\npolygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.4], [0.1, 0.4]]\n\
             [[shelves.facings]]\nname = \"stray\"\npolygon = [[0.6, 0.1], [0.8, 0.1], [0.8, 0.4], [0.6, 0.4]]\n",
        )
        .expect_err("outside");
        assert!(
            e.iter()
                .any(|m| m.contains("facings[1]: 100 % of it lies outside the shelf")),
            "{e:?}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let e = shelf("grid = [0, 3]\n[[shelves.facings]]\nname = \"x\"\npolygon = [[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]\n")
            .expect_err("both");
        assert!(
            e.iter().any(|m| m.contains("either grid or facings")),
            "{e:?}"
        );

        #[derive(Deserialize)]
        struct Doc {
            shelves: Vec<RawShelf>,
        }
        let doc: Doc = toml::from_str(
            "[[shelves]]\nname = \"\"\npolygon = [[0.1, 0.1], [1.5, 0.1], [0.5, 0.4]]\ngrid = [1, 2]\n\
             front = [[0.1, 0.4], [0.5, 0.4]]\n",
        )
        .expect("parse");
        let e = validate(&doc.shelves).expect_err("invalid");
        assert!(e.iter().any(|m| m == "shelves[0].name: empty"), "{e:?}");
        assert!(
            e.iter()
                .any(|m| m.contains("shelves[0].polygon[1]: (1.5, 0.1) is outside 0..1")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("shelves[0].front: needs at least 3 points")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|m| m.contains("shelves[0].grid: a grid needs a shelf of 4 corners")),
            "{e:?}"
        );
        assert!(
            toml::from_str::<Doc>("[[shelves]]\nname = \"x\"\nshape = 1\n").is_err(),
            "unknown fields are refused"
        );
    }
}
