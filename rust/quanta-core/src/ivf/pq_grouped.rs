//! List-major IVFPQ search over small groups of queries (L2 with precomputed tables).
//!
//! Why: with precomputed tables every probed list costs its `M × ksub` precomputed term
//! (32 KiB at PQ32) on top of its codes, and the `nlist` terms (32 MiB at IVF1024,PQ32) do
//! not stay in cache: query by query, that term streamed from DRAM for every (query, list)
//! pair. Here a group of [`GROUP`] nearby queries (a leaf of [`locality_order`], so they probe
//! mostly the same lists) is scanned list by list: each distinct list's term and codes are read from
//! memory once per group and reused from L1/L2 by the group's other queries, while the group's
//! query tables (`GROUP × 32 KiB`) stay in L2.
//!
//! Every (query, list) pair is scanned with the same table and kernel as the query-by-query
//! driver and the collectors do not depend on the order of offers, so the results are the
//! same bit for bit.

use super::{locality_order, IdSelector, IndexIVFPQ, Probes, LOCALITY_LEAF};
use crate::control::Control;
use crate::error::Result;
use crate::index::SearchResult;
use crate::kernels::pq::TABLE_STRIDE;
use crate::simd::level;
use crate::topk::TopK;
use rayon::prelude::*;

/// Queries per group (a leaf of the locality order): their query tables (32 KiB each at PQ32)
/// fit in a 512 KiB L2 next to the current list's table, term and codes.
const GROUP: usize = LOCALITY_LEAF;

/// Per-worker buffers: the group's query tables, the current list table and the pairs.
struct Buffers {
    query: Vec<f32>,
    table: Vec<f32>,
    pairs: Vec<(usize, usize, f32)>,
}

impl IndexIVFPQ {
    /// Whether [`search_grouped`](Self::search_grouped) applies: per-list tables (L2 with
    /// residuals), and enough queries that every thread gets whole groups (with fewer, the
    /// generic driver splits each query's lists over the threads instead).
    pub(super) fn use_grouped(&self, nq: usize) -> bool {
        self.precomputed_rows(0).is_some() && nq >= GROUP * crate::threads::num_threads().max(1)
    }

    /// The search of [`search`](Self::search) when [`use_grouped`](Self::use_grouped) holds.
    pub(super) fn search_grouped(
        &self,
        probes: Probes,
        q: &[f32],
        k: usize,
        sel: Option<&IdSelector>,
        ctl: &Control,
    ) -> Result<SearchResult> {
        let Probes {
            nq,
            nprobe,
            dist: cd,
            ids: ci,
        } = probes;
        let (d, n) = (self.d(), self.pq.m() * TABLE_STRIDE);
        let lvl = level();
        let lists = &self.base.lists;
        ctl.set_total(nq as u64);
        let order = locality_order(q, d, nprobe);
        let init = || Buffers {
            query: vec![f32::INFINITY; GROUP * n],
            table: vec![f32::INFINITY; n],
            pairs: Vec::with_capacity(GROUP * nprobe),
        };
        let groups: Vec<Vec<TopK>> = order
            .par_chunks(GROUP)
            .map_init(init, |b, grp| -> Result<Vec<TopK>> {
                ctl.check()?;
                b.pairs.clear();
                let mut heaps = Vec::with_capacity(grp.len());
                for (g, &i) in grp.iter().enumerate() {
                    let qt = &mut b.query[g * n..(g + 1) * n];
                    self.query_rows(&q[i * d..(i + 1) * d], lvl, qt, TABLE_STRIDE);
                    let row = (ci[i * nprobe..(i + 1) * nprobe].iter()).zip(&cd[i * nprobe..]);
                    let before = b.pairs.len();
                    b.pairs.extend(
                        row.filter(|(&l, _)| l >= 0)
                            .map(|(&l, &key)| (l as usize, g, key)),
                    );
                    let cand = b.pairs[before..].iter().map(|p| lists.list_len(p.0)).sum();
                    heaps.push(TopK::with_capacity_hint(k, cand));
                }
                // list-major; within a list, query order (any order gives the same results)
                b.pairs.sort_unstable_by_key(|&(l, g, _)| (l, g));
                for (j, &(l, g, key)) in b.pairs.iter().enumerate() {
                    if lists.list_len(l) == 0 {
                        continue;
                    }
                    // prefetch only a list not scanned yet: a repeated one is in cache
                    let next = b.pairs.get(j + 1).map(|p| p.0).filter(|&nl| nl != l);
                    self.add_list_term(l, &b.query[g * n..(g + 1) * n], &mut b.table);
                    self.scan_codes(lvl, l, &b.table, key, next, sel, &mut heaps[g]);
                }
                ctl.advance(grp.len() as u64);
                Ok(heaps)
            })
            .collect::<Result<_>>()?;
        let mut dist = vec![0f32; nq * k];
        let mut ids = vec![0i64; nq * k];
        let heaps = groups.into_iter().flatten();
        for (heap, &i) in heaps.zip(&order) {
            let (dq, iq) = (&mut dist[i * k..(i + 1) * k], &mut ids[i * k..(i + 1) * k]);
            heap.write_into(dq, iq, self.metric().pad(), |key| key);
        }
        Ok((dist, ids))
    }
}
