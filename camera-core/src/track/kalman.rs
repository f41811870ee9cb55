//! Constant-velocity Kalman filter on a box `(cx, cy, aspect, height)`.
//!
//! The noise model is ByteTrack's (std weights 1/20 for position and 1/160
//! for velocity, scaled by the box height). Its matrices are block-diagonal
//! per coordinate, so the 8-state filter splits exactly into four
//! independent 2-state filters (position, velocity): no matrix library, no
//! allocation. Time is an argument: velocities are per reference frame of
//! 1/25 s and the process noise grows with the elapsed time, so a camera
//! running at 10 or 30 fps behaves like one at 25.

/// Reference frame period the noise weights were tuned for (MOT17, 25–30 fps).
pub const REF_DT: f64 = 1.0 / 25.0;

const W_POS: f32 = 1.0 / 20.0;
const W_VEL: f32 = 1.0 / 160.0;

/// One coordinate: value, rate, and their 2×2 covariance.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Axis {
    p: f32,
    v: f32,
    p00: f32,
    p01: f32,
    p11: f32,
}

impl Axis {
    fn new(p: f32, std_p: f32, std_v: f32) -> Self {
        Self {
            p,
            v: 0.0,
            p00: std_p * std_p,
            p01: 0.0,
            p11: std_v * std_v,
        }
    }

    /// Advance by `k` reference frames with process noise std (q_p, q_v)
    /// per reference frame.
    fn predict(&mut self, k: f32, q_p: f32, q_v: f32) {
        self.p += k * self.v;
        self.p00 += 2.0 * k * self.p01 + k * k * self.p11 + k * q_p * q_p;
        self.p01 += k * self.p11;
        self.p11 += k * q_v * q_v;
    }

    /// Fold in a measurement `z` with noise std `r`.
    fn update(&mut self, z: f32, r: f32) {
        let s = self.p00 + r * r;
        let (k0, k1) = (self.p00 / s, self.p01 / s);
        let y = z - self.p;
        self.p += k0 * y;
        self.v += k1 * y;
        let (p00, p01) = (self.p00, self.p01);
        self.p00 = (1.0 - k0) * p00;
        self.p01 = (1.0 - k0) * p01;
        self.p11 -= k1 * p01;
    }
}

/// A box as centre, aspect ratio (w/h) and height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Xyah {
    pub cx: f32,
    pub cy: f32,
    pub a: f32,
    pub h: f32,
}

/// The filter state of one track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KalmanBox {
    axes: [Axis; 4],
}

impl KalmanBox {
    /// Start from a first measurement, velocity unknown.
    pub fn new(m: Xyah) -> Self {
        let h = m.h;
        let (sp, sv) = (2.0 * W_POS * h, 10.0 * W_VEL * h);
        Self {
            axes: [
                Axis::new(m.cx, sp, sv),
                Axis::new(m.cy, sp, sv),
                Axis::new(m.a, 1e-2, 1e-5),
                Axis::new(m.h, sp, sv),
            ],
        }
    }

    /// The current estimate.
    pub fn state(&self) -> Xyah {
        Xyah {
            cx: self.axes[0].p,
            cy: self.axes[1].p,
            a: self.axes[2].p,
            h: self.axes[3].p,
        }
    }

    /// Advance by `dt` seconds. `hold_height` zeroes the height rate first,
    /// as ByteTrack does for tracks that were not matched last frame.
    pub fn predict(&mut self, dt: f64, hold_height: bool) {
        if hold_height {
            self.axes[3].v = 0.0;
        }
        let k = (dt / REF_DT) as f32;
        let h = self.axes[3].p;
        let (qp, qv) = (W_POS * h, W_VEL * h);
        self.axes[0].predict(k, qp, qv);
        self.axes[1].predict(k, qp, qv);
        self.axes[2].predict(k, 1e-2, 1e-5);
        self.axes[3].predict(k, qp, qv);
    }

    /// Correct with a measured box.
    pub fn update(&mut self, m: Xyah) {
        let r = W_POS * self.axes[3].p;
        self.axes[0].update(m.cx, r);
        self.axes[1].update(m.cy, r);
        self.axes[2].update(m.a, 1e-1);
        self.axes[3].update(m.h, r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_constant_velocity_and_extrapolates() {
        let mut k = KalmanBox::new(Xyah {
            cx: 100.0,
            cy: 50.0,
            a: 0.5,
            h: 100.0,
        });
        // Moving right 4 px per reference frame.
        for i in 1..=20 {
            k.predict(REF_DT, false);
            k.update(Xyah {
                cx: 100.0 + 4.0 * i as f32,
                cy: 50.0,
                a: 0.5,
                h: 100.0,
            });
        }
        assert!((k.state().cx - 180.0).abs() < 1.0, "{:?}", k.state());
        // Half a second without measurements: 12.5 reference frames.
        k.predict(0.5, true);
        assert!((k.state().cx - 230.0).abs() < 3.0, "{:?}", k.state());
        assert!((k.state().h - 100.0).abs() < 1.0);
    }

    #[test]
    fn measurement_pulls_the_estimate_between_prior_and_measurement() {
        let mut k = KalmanBox::new(Xyah {
            cx: 0.0,
            cy: 0.0,
            a: 1.0,
            h: 50.0,
        });
        k.predict(REF_DT, false);
        k.update(Xyah {
            cx: 10.0,
            cy: 0.0,
            a: 1.0,
            h: 50.0,
        });
        let cx = k.state().cx;
        assert!(cx > 0.0 && cx < 10.0, "{cx}");
    }
}
