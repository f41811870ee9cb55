//! Plane geometry in normalised image coordinates (0..1, y down): the
//! points, polylines and polygons of lines, zones and shelves.

/// A point.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }

    fn sub(self, o: Self) -> Self {
        Self::new(self.x - o.x, self.y - o.y)
    }

    fn dot(self, o: Self) -> f32 {
        self.x * o.x + self.y * o.y
    }

    fn cross(self, o: Self) -> f32 {
        self.x * o.y - self.y * o.x
    }
}

/// Why a polyline is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeomError {
    #[error("needs at least 2 points, has {0}")]
    TooFewPoints(usize),
    #[error("segment {0} has zero length")]
    ZeroLength(usize),
}

/// An open polyline of at least one non-degenerate segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Polyline {
    points: Vec<Point>,
}

impl Polyline {
    pub fn new(points: Vec<Point>) -> Result<Self, GeomError> {
        if points.len() < 2 {
            return Err(GeomError::TooFewPoints(points.len()));
        }
        for (i, w) in points.windows(2).enumerate() {
            if w[1].sub(w[0]).dot(w[1].sub(w[0])) <= f32::EPSILON * f32::EPSILON {
                return Err(GeomError::ZeroLength(i));
            }
        }
        Ok(Self { points })
    }

    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// Distance from `p` to the polyline, and which side of the nearest
    /// segment it lies on: positive on the left as a viewer of the image
    /// sees it when walking from the first point to the last (for a line
    /// drawn left to right, "left" is above it on screen).
    pub fn distance_and_side(&self, p: Point) -> (f32, f32) {
        let mut best = (f32::INFINITY, 0.0);
        for w in self.points.windows(2) {
            let (a, b) = (w[0], w[1]);
            let ab = b.sub(a);
            let t = (p.sub(a).dot(ab) / ab.dot(ab)).clamp(0.0, 1.0);
            let q = Point::new(a.x + t * ab.x, a.y + t * ab.y);
            let d = p.sub(q).dot(p.sub(q)).sqrt();
            if d < best.0 {
                // Screen coordinates have y down: negate so that "left"
                // means left as a viewer of the image sees it.
                best = (d, -ab.cross(p.sub(a)));
            }
        }
        best
    }

    /// Whether the segment from `a` to `b` cuts the polyline.
    pub fn crossed_by(&self, a: Point, b: Point) -> bool {
        self.points
            .windows(2)
            .any(|w| segments_intersect(a, b, w[0], w[1]))
    }
}

/// Whether segments pq and rs intersect (touching counts).
pub fn segments_intersect(p: Point, q: Point, r: Point, s: Point) -> bool {
    let d1 = s.sub(r).cross(p.sub(r));
    let d2 = s.sub(r).cross(q.sub(r));
    let d3 = q.sub(p).cross(r.sub(p));
    let d4 = q.sub(p).cross(s.sub(p));
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    let on = |a: Point, b: Point, c: Point, d: f32| {
        d == 0.0
            && c.x >= a.x.min(b.x)
            && c.x <= a.x.max(b.x)
            && c.y >= a.y.min(b.y)
            && c.y <= a.y.max(b.y)
    };
    on(r, s, p, d1) || on(r, s, q, d2) || on(p, q, r, d3) || on(p, q, s, d4)
}

/// A simple polygon (at least 3 points, not self-intersecting).
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    points: Vec<Point>,
}

/// Why a polygon is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolygonError {
    #[error("needs at least 3 points, has {0}")]
    TooFewPoints(usize),
    #[error("edges {0} and {1} cross: the polygon is self-intersecting")]
    SelfIntersecting(usize, usize),
    #[error("has zero area")]
    ZeroArea,
}

impl Polygon {
    pub fn new(points: Vec<Point>) -> Result<Self, PolygonError> {
        let n = points.len();
        if n < 3 {
            return Err(PolygonError::TooFewPoints(n));
        }
        let edge = |i: usize| (points[i], points[(i + 1) % n]);
        for i in 0..n {
            for j in i + 1..n {
                // Adjacent edges share a vertex; skip them.
                if j == i + 1 || (i == 0 && j == n - 1) {
                    continue;
                }
                let ((a, b), (c, d)) = (edge(i), edge(j));
                if segments_intersect(a, b, c, d) {
                    return Err(PolygonError::SelfIntersecting(i, j));
                }
            }
        }
        let twice_area: f32 = (0..n)
            .map(|i| {
                let (a, b) = edge(i);
                a.x * b.y - b.x * a.y
            })
            .sum();
        if twice_area.abs() <= 1e-9 {
            return Err(PolygonError::ZeroArea);
        }
        Ok(Self { points })
    }

    /// The corners, in order.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// Even-odd rule.
    pub fn contains(&self, p: Point) -> bool {
        let n = self.points.len();
        let mut inside = false;
        let mut j = n - 1;
        for i in 0..n {
            let (a, b) = (self.points[i], self.points[j]);
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_side_of_a_horizontal_line() {
        let l = Polyline::new(vec![Point::new(0.0, 0.5), Point::new(1.0, 0.5)]).expect("line");
        let (d, s) = l.distance_and_side(Point::new(0.5, 0.4));
        assert!((d - 0.1).abs() < 1e-6);
        // Above the line on screen is to the left walking left to right.
        assert!(s > 0.0);
        let (_, s) = l.distance_and_side(Point::new(0.5, 0.6));
        assert!(s < 0.0);
    }

    #[test]
    fn degenerate_polylines_are_refused() {
        assert_eq!(
            Polyline::new(vec![Point::new(0.1, 0.1)]),
            Err(GeomError::TooFewPoints(1))
        );
        assert_eq!(
            Polyline::new(vec![Point::new(0.1, 0.1), Point::new(0.1, 0.1)]),
            Err(GeomError::ZeroLength(0))
        );
    }

    #[test]
    fn segment_intersection() {
        let p = |x, y| Point::new(x, y);
        assert!(segments_intersect(
            p(0., 0.),
            p(1., 1.),
            p(0., 1.),
            p(1., 0.)
        ));
        assert!(!segments_intersect(
            p(0., 0.),
            p(1., 0.),
            p(0., 1.),
            p(1., 1.)
        ));
        assert!(segments_intersect(
            p(0., 0.),
            p(1., 0.),
            p(1., 0.),
            p(1., 1.)
        ));
    }
}
