//! Minimum-cost assignment with a cost limit, for track ↔ detection
//! matching.
//!
//! Pairs costing more than the limit are never matched. The valid pairs
//! form a sparse bipartite graph; each connected component is solved on its
//! own with the Hungarian method (shortest augmenting paths with
//! potentials), so a hundred people who do not overlap cost a hundred 1×1
//! problems rather than one 100×100 one. Scratch buffers are kept between
//! calls: no allocation in steady state.

/// Reusable solver.
#[derive(Debug, Default)]
pub struct Assigner {
    parent: Vec<usize>,
    comp_rows: Vec<usize>,
    comp_cols: Vec<usize>,
    /// Component number by root node (`usize::MAX`: none yet).
    comp_of: Vec<usize>,
    /// (component, row) and (component, column), sorted.
    row_order: Vec<(usize, usize)>,
    col_order: Vec<(usize, usize)>,
    sub: Vec<f64>,
    u: Vec<f64>,
    v: Vec<f64>,
    p: Vec<usize>,
    way: Vec<usize>,
    minv: Vec<f64>,
    used: Vec<bool>,
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

impl Assigner {
    /// Match rows to columns of the row-major `cost` (`rows × cols`), never
    /// matching a pair above `limit`, where an unmatched row or column
    /// costs `limit / 2` (ByteTrack's extended LAPJV): the total of matched
    /// costs plus unmatched penalties is minimal. Appends `(row, col)`
    /// pairs to `out`.
    pub fn solve(
        &mut self,
        cost: &[f32],
        rows: usize,
        cols: usize,
        limit: f32,
        out: &mut Vec<(usize, usize)>,
    ) {
        debug_assert_eq!(cost.len(), rows * cols);
        if rows == 0 || cols == 0 {
            return;
        }
        // Union-find over rows (0..rows) and columns (rows..rows+cols).
        self.parent.clear();
        self.parent.extend(0..rows + cols);
        for r in 0..rows {
            for c in 0..cols {
                if cost[r * cols + c] <= limit {
                    let (a, b) = (find(&mut self.parent, r), find(&mut self.parent, rows + c));
                    if a != b {
                        self.parent[a] = b;
                    }
                }
            }
        }
        // Number the components in the order of their first row, then
        // list each side's members by (component, index): one sort instead
        // of a scan of every node per component, and the same order of
        // pairs as before (which decides the order new track ids go out).
        self.comp_of.clear();
        self.comp_of.resize(rows + cols, usize::MAX);
        self.row_order.clear();
        self.col_order.clear();
        let mut comps = 0;
        for r in 0..rows {
            let root = find(&mut self.parent, r);
            if self.comp_of[root] == usize::MAX {
                self.comp_of[root] = comps;
                comps += 1;
            }
            self.row_order.push((self.comp_of[root], r));
        }
        for c in 0..cols {
            let root = find(&mut self.parent, rows + c);
            // A column with no valid pair has a component of its own.
            if self.comp_of[root] != usize::MAX {
                self.col_order.push((self.comp_of[root], c));
            }
        }
        self.row_order.sort_unstable();
        self.col_order.sort_unstable();
        let (mut ri, mut ci) = (0, 0);
        for k in 0..comps {
            self.comp_rows.clear();
            self.comp_cols.clear();
            while ri < self.row_order.len() && self.row_order[ri].0 == k {
                self.comp_rows.push(self.row_order[ri].1);
                ri += 1;
            }
            while ci < self.col_order.len() && self.col_order[ci].0 == k {
                self.comp_cols.push(self.col_order[ci].1);
                ci += 1;
            }
            if self.comp_cols.is_empty() {
                continue; // a row with no valid pair
            }
            if let ([r0], [c0]) = (self.comp_rows.as_slice(), self.comp_cols.as_slice()) {
                out.push((*r0, *c0));
                continue;
            }
            self.solve_component(cost, cols, limit, out);
        }
    }

    /// Dense Hungarian on the current component.
    fn solve_component(
        &mut self,
        cost: &[f32],
        cols: usize,
        limit: f32,
        out: &mut Vec<(usize, usize)>,
    ) {
        // The algorithm wants n ≤ m: transpose when there are more rows.
        let transpose = self.comp_rows.len() > self.comp_cols.len();
        let (n, m) = if transpose {
            (self.comp_cols.len(), self.comp_rows.len())
        } else {
            (self.comp_rows.len(), self.comp_cols.len())
        };
        self.sub.clear();
        for i in 0..n {
            for j in 0..m {
                let (r, c) = if transpose {
                    (self.comp_rows[j], self.comp_cols[i])
                } else {
                    (self.comp_rows[i], self.comp_cols[j])
                };
                // A pair above the limit costs the limit: matching it is
                // worth no more than leaving both sides unmatched (limit/2
                // each), as in ByteTrack's extended LAPJV. So a track is
                // not pushed onto a worse detection just to match more
                // pairs.
                let x = cost[r * cols + c];
                self.sub.push(f64::from(if x <= limit { x } else { limit }));
            }
        }
        self.hungarian(n, m);
        for j in 1..=m {
            let i = self.p[j];
            if i == 0 {
                continue;
            }
            let (r, c) = if transpose {
                (self.comp_rows[j - 1], self.comp_cols[i - 1])
            } else {
                (self.comp_rows[i - 1], self.comp_cols[j - 1])
            };
            if cost[r * cols + c] <= limit {
                out.push((r, c));
            }
        }
    }

    /// The minimum-cost assignment of the `n`×`m` matrix in `sub` (n ≤ m):
    /// the e-maxx formulation, 1-based with a virtual column 0; `p[j]` is
    /// the row given column `j` (0: none).
    fn hungarian(&mut self, n: usize, m: usize) {
        self.u.clear();
        self.u.resize(n + 1, 0.0);
        self.v.clear();
        self.v.resize(m + 1, 0.0);
        self.p.clear();
        self.p.resize(m + 1, 0);
        self.way.clear();
        self.way.resize(m + 1, 0);
        for i in 1..=n {
            self.p[0] = i;
            let mut j0 = 0;
            self.minv.clear();
            self.minv.resize(m + 1, f64::INFINITY);
            self.used.clear();
            self.used.resize(m + 1, false);
            loop {
                self.used[j0] = true;
                let i0 = self.p[j0];
                let mut delta = f64::INFINITY;
                let mut j1 = 0;
                for j in 1..=m {
                    if !self.used[j] {
                        let cur = self.sub[(i0 - 1) * m + (j - 1)] - self.u[i0] - self.v[j];
                        if cur < self.minv[j] {
                            self.minv[j] = cur;
                            self.way[j] = j0;
                        }
                        if self.minv[j] < delta {
                            delta = self.minv[j];
                            j1 = j;
                        }
                    }
                }
                for j in 0..=m {
                    if self.used[j] {
                        self.u[self.p[j]] += delta;
                        self.v[j] -= delta;
                    } else {
                        self.minv[j] -= delta;
                    }
                }
                j0 = j1;
                if self.p[j0] == 0 {
                    break;
                }
            }
            loop {
                let j1 = self.way[j0];
                self.p[j0] = self.p[j1];
                j0 = j1;
                if j0 == 0 {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solve(cost: &[f32], rows: usize, cols: usize, limit: f32) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        Assigner::default().solve(cost, rows, cols, limit, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn a_poor_second_pair_does_not_displace_a_good_one() {
        // Track 0 fits detection 0 well (0.2) and detection 1 poorly
        // (0.7); track 1 fits detection 0 poorly (0.75). Matching both
        // (0.7 + 0.75) is worse than the good pair and two unmatched
        // sides (0.2 + 0.8/2 + 0.8/2).
        let cost = [0.2, 0.7, 0.75, 0.95];
        assert_eq!(solve(&cost, 2, 2, 0.8), [(0, 0)]);
    }

    #[test]
    fn optimal_not_greedy() {
        // Greedy would take (0,0)=0.1 and then (1,1)=0.9; optimal is the
        // cross pairing 0.2 + 0.3.
        let cost = [0.1, 0.2, 0.3, 0.9];
        assert_eq!(solve(&cost, 2, 2, 1.0), [(0, 1), (1, 0)]);
    }

    #[test]
    fn pairs_over_the_limit_are_never_matched() {
        let cost = [0.1, 0.95, 0.95, 0.95];
        assert_eq!(solve(&cost, 2, 2, 0.8), [(0, 0)]);
    }

    #[test]
    fn rectangular_both_ways() {
        // 3 rows, 2 columns.
        let cost = [0.5, 0.1, 0.2, 0.6, 0.3, 0.3];
        assert_eq!(solve(&cost, 3, 2, 0.8), [(0, 1), (1, 0)]);
        // 2 rows, 3 columns.
        let cost = [0.5, 0.2, 0.3, 0.1, 0.6, 0.3];
        assert_eq!(solve(&cost, 2, 3, 0.8), [(0, 1), (1, 0)]);
    }

    #[test]
    fn matches_brute_force_on_random_matrices() {
        // Deterministic pseudo-random costs; compare totals with brute force.
        let mut seed = 12345u32;
        let mut rnd = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 8) as f32 / (1u32 << 24) as f32
        };
        for _ in 0..200 {
            let (rows, cols) = (1 + (rnd() * 4.0) as usize, 1 + (rnd() * 4.0) as usize);
            let cost: Vec<f32> = (0..rows * cols).map(|_| rnd()).collect();
            let limit = 0.7;
            let got = solve(&cost, rows, cols, limit);
            // Each matched pair saves `limit` (two unmatched sides at
            // limit/2) and costs its cost.
            let gain = |pairs: &[(usize, usize)]| {
                pairs
                    .iter()
                    .map(|&(r, c)| limit - cost[r * cols + c])
                    .sum::<f32>()
            };
            let best = brute(&cost, rows, cols, limit);
            assert!(got.iter().all(|&(r, c)| cost[r * cols + c] <= limit));
            assert!(
                (gain(&got) - gain(&best)).abs() < 1e-5,
                "{cost:?}: {got:?} vs {best:?}"
            );
        }
    }

    fn brute(cost: &[f32], rows: usize, cols: usize, limit: f32) -> Vec<(usize, usize)> {
        #[allow(clippy::too_many_arguments)]
        fn go(
            r: usize,
            cost: &[f32],
            rows: usize,
            cols: usize,
            limit: f32,
            used: &mut Vec<bool>,
            cur: &mut Vec<(usize, usize)>,
            best: &mut Vec<(usize, usize)>,
        ) {
            if r == rows {
                let gain = |p: &[(usize, usize)]| {
                    p.iter()
                        .map(|&(r, c)| limit - cost[r * cols + c])
                        .sum::<f32>()
                };
                if gain(cur) > gain(best) + 1e-7 {
                    *best = cur.clone();
                }
                return;
            }
            go(r + 1, cost, rows, cols, limit, used, cur, best);
            for c in 0..cols {
                if !used[c] && cost[r * cols + c] <= limit {
                    used[c] = true;
                    cur.push((r, c));
                    go(r + 1, cost, rows, cols, limit, used, cur, best);
                    cur.pop();
                    used[c] = false;
                }
            }
        }
        let mut best = Vec::new();
        go(
            0,
            cost,
            rows,
            cols,
            limit,
            &mut vec![false; cols],
            &mut Vec::new(),
            &mut best,
        );
        best.sort_unstable();
        best
    }
}
