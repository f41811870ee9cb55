//! Plane geometry in normalised image coordinates (0..1, x right, y down),
//! with the same conventions as camera-app's `analytics::geom`: a point's
//! side of a polyline is positive on the LEFT as a viewer of the image sees
//! it when walking from the first point to the last (for a line drawn left
//! to right, left is above it on screen).

/// A point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }

    pub fn minus(self, o: Self) -> Self {
        Self::new(self.x - o.x, self.y - o.y)
    }

    pub fn dot(self, o: Self) -> f64 {
        self.x * o.x + self.y * o.y
    }

    pub fn cross(self, o: Self) -> f64 {
        self.x * o.y - self.y * o.x
    }

    pub fn lerp(self, o: Self, u: f64) -> Self {
        Self::new(self.x + u * (o.x - self.x), self.y + u * (o.y - self.y))
    }
}

/// Signed side of `p` relative to the directed segment `a -> b`: positive
/// on the viewer's left (camera-app's `-ab.cross(ap)`, y being down).
pub fn side(a: Point, b: Point, p: Point) -> f64 {
    -b.minus(a).cross(p.minus(a))
}

/// Distance from `p` to the polyline and the side of the nearest segment
/// (positive = left), exactly as camera-app computes it.
pub fn distance_and_side(line: &[Point], p: Point) -> (f64, f64) {
    let mut best = (f64::INFINITY, 0.0);
    for w in line.windows(2) {
        let (a, b) = (w[0], w[1]);
        let ab = b.minus(a);
        let t = (p.minus(a).dot(ab) / ab.dot(ab)).clamp(0.0, 1.0);
        let q = a.lerp(b, t);
        let d = p.minus(q).dot(p.minus(q)).sqrt();
        if d < best.0 {
            best = (d, side(a, b, p));
        }
    }
    best
}

/// Where the segment `p -> q` properly crosses the segment `a -> b`: the
/// parameter along `p -> q` (0..1), and whether it moves onto the left of
/// `a -> b`. Touching without passing through is not a crossing.
pub fn crossing(p: Point, q: Point, a: Point, b: Point) -> Option<(f64, bool)> {
    let sp = side(a, b, p);
    let sq = side(a, b, q);
    if (sp > 0.0) == (sq > 0.0) || sp == 0.0 && sq == 0.0 {
        return None;
    }
    // The line through a, b is crossed; is it within the segment?
    let sa = -q.minus(p).cross(a.minus(p));
    let sb = -q.minus(p).cross(b.minus(p));
    if (sa > 0.0 && sb > 0.0) || (sa < 0.0 && sb < 0.0) {
        return None;
    }
    let u = sp / (sp - sq);
    Some((u, sq > 0.0))
}

/// Even-odd point-in-polygon test, as camera-app's `Polygon::contains`.
pub fn polygon_contains(poly: &[Point], p: Point) -> bool {
    let n = poly.len();
    let mut inside = false;
    let mut j = n - 1;
    for i in 0..n {
        let (a, b) = (poly[i], poly[j]);
        if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn above_a_left_to_right_line_is_left() {
        let line = [Point::new(0.0, 0.5), Point::new(1.0, 0.5)];
        let (d, s) = distance_and_side(&line, Point::new(0.5, 0.4));
        assert!((d - 0.1).abs() < 1e-12);
        assert!(s > 0.0);
        assert!(distance_and_side(&line, Point::new(0.5, 0.6)).1 < 0.0);
    }

    #[test]
    fn crossing_parameter_and_direction() {
        let (a, b) = (Point::new(0.0, 0.5), Point::new(1.0, 0.5));
        // Walking up the screen moves onto the left of a left-to-right line.
        let (u, onto_left) =
            crossing(Point::new(0.5, 0.9), Point::new(0.5, 0.3), a, b).expect("crosses");
        assert!((u - 4.0 / 6.0).abs() < 1e-12);
        assert!(onto_left);
        let (_, onto_left) =
            crossing(Point::new(0.5, 0.3), Point::new(0.5, 0.9), a, b).expect("crosses");
        assert!(!onto_left);
        // Past the end of the segment: no crossing.
        assert!(crossing(Point::new(1.5, 0.9), Point::new(1.5, 0.3), a, b).is_none());
        // Stopping short: no crossing.
        assert!(crossing(Point::new(0.5, 0.9), Point::new(0.5, 0.56), a, b).is_none());
    }

    #[test]
    fn polygon() {
        let sq = [
            Point::new(0.2, 0.2),
            Point::new(0.6, 0.2),
            Point::new(0.6, 0.6),
            Point::new(0.2, 0.6),
        ];
        assert!(polygon_contains(&sq, Point::new(0.4, 0.4)));
        assert!(!polygon_contains(&sq, Point::new(0.9, 0.9)));
    }
}
