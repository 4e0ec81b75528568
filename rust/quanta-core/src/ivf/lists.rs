//! Inverted lists: per list, the codes (`code_len` elements of `T` per entry) and the int64 ids
//! of its entries, each contiguous and in insertion order.
//!
//! Every list is its own [`SharedSlice`], so a file loaded with `mmap` hands out one view per
//! list into the concatenated sections, and the first write to a list (add, removal) copies that
//! list only (copy-on-write); untouched lists stay mapped.

use super::IdSet;
use crate::error::Result;
use crate::io::{Element, FileReader, FileWriter, SharedSlice};
use rayon::prelude::*;

/// `nlist` inverted lists of fixed-width entries.
#[derive(Debug, Clone)]
pub struct InvertedLists<T: Element> {
    code_len: usize,
    codes: Vec<SharedSlice<T>>,
    ids: Vec<SharedSlice<i64>>,
}

impl<T: Element> InvertedLists<T> {
    /// `nlist` empty lists of entries of `code_len` elements.
    pub fn new(nlist: usize, code_len: usize) -> Self {
        InvertedLists {
            code_len,
            codes: vec![SharedSlice::new(); nlist],
            ids: vec![SharedSlice::new(); nlist],
        }
    }

    /// Number of lists.
    pub fn nlist(&self) -> usize {
        self.ids.len()
    }

    /// Elements of `T` per entry.
    pub fn code_len(&self) -> usize {
        self.code_len
    }

    /// Entries in list `l`.
    pub fn list_len(&self, l: usize) -> usize {
        self.ids[l].len()
    }

    /// Codes of list `l` (`list_len(l) × code_len`).
    pub fn codes(&self, l: usize) -> &[T] {
        &self.codes[l]
    }

    /// Ids of list `l`.
    pub fn ids(&self, l: usize) -> &[i64] {
        &self.ids[l]
    }

    /// Total number of entries.
    pub fn ntotal(&self) -> usize {
        self.ids.iter().map(|l| l.len()).sum()
    }

    /// Size of every list.
    pub fn sizes(&self) -> Vec<usize> {
        self.ids.iter().map(|l| l.len()).collect()
    }

    /// faiss `imbalance_factor`: `nlist · Σ size² / (Σ size)²` (1 = perfectly balanced; 0 when
    /// empty).
    pub fn imbalance_factor(&self) -> f64 {
        let tot = self.ntotal() as f64;
        if tot == 0.0 {
            return 0.0;
        }
        let sq: f64 = self.ids.iter().map(|l| (l.len() as f64).powi(2)).sum();
        self.nlist() as f64 * sq / (tot * tot)
    }

    /// Whether any list is still a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        self.codes.iter().any(|c| c.is_mapped()) || self.ids.iter().any(|c| c.is_mapped())
    }

    /// Append entries: row `i` (`codes[i·code_len..]`, `ids[i]`) goes to list `assign[i]`,
    /// rows of one list in input order. `assign` values must be `< nlist`.
    pub fn append(&mut self, assign: &[usize], codes: &[T], ids: &[i64]) {
        let cl = self.code_len;
        debug_assert_eq!(codes.len(), assign.len() * cl);
        debug_assert_eq!(ids.len(), assign.len());
        // count per list first, so each list grows once
        let mut count = vec![0usize; self.nlist()];
        for &a in assign {
            count[a] += 1;
        }
        for (l, &c) in count.iter().enumerate() {
            if c > 0 {
                self.codes[l].make_mut().reserve(c * cl);
                self.ids[l].make_mut().reserve(c);
            }
        }
        for (i, &a) in assign.iter().enumerate() {
            self.codes[a]
                .make_mut()
                .extend_from_slice(&codes[i * cl..(i + 1) * cl]);
            self.ids[a].make_mut().push(ids[i]);
        }
    }

    /// Remove every entry whose id is in `set`; returns how many were removed. Lists that hold
    /// none of them are not touched (a mapped list stays mapped).
    pub fn remove(&mut self, set: &IdSet) -> usize {
        self.remove_where(|id| set.contains(id))
    }

    /// Remove every entry whose id `doomed` accepts (see [`remove`](Self::remove)).
    pub fn remove_where(&mut self, doomed: impl Fn(i64) -> bool + Sync) -> usize {
        let cl = self.code_len;
        self.codes
            .par_iter_mut()
            .zip(self.ids.par_iter_mut())
            .map(|(codes, ids)| {
                if !ids.iter().any(|&id| doomed(id)) {
                    return 0;
                }
                let old_ids = ids.to_vec();
                let old_codes = codes.to_vec();
                let (c, i) = (codes.make_mut(), ids.make_mut());
                c.clear();
                i.clear();
                for (j, &id) in old_ids.iter().enumerate() {
                    if !doomed(id) {
                        i.push(id);
                        c.extend_from_slice(&old_codes[j * cl..(j + 1) * cl]);
                    }
                }
                old_ids.len() - i.len()
            })
            .sum()
    }

    /// Replace every id by `f(id)`; lists whose ids all stay the same are not touched (a
    /// mapped list stays mapped).
    pub fn map_ids(&mut self, f: impl Fn(i64) -> i64 + Sync) {
        self.ids.par_iter_mut().for_each(|ids| {
            if ids.iter().any(|&id| f(id) != id) {
                ids.make_mut().iter_mut().for_each(|id| *id = f(*id));
            }
        });
    }

    /// Append every entry of `other` (same `nlist` and code length) to the same list here.
    pub fn append_lists(&mut self, other: &InvertedLists<T>) {
        debug_assert_eq!(
            (self.nlist(), self.code_len),
            (other.nlist(), other.code_len)
        );
        for l in 0..self.nlist().min(other.nlist()) {
            if other.list_len(l) > 0 {
                self.codes[l].make_mut().extend_from_slice(other.codes(l));
                self.ids[l].make_mut().extend_from_slice(other.ids(l));
            }
        }
    }

    /// Position `(list, offset)` of the first entry with id `id` (lists in order).
    pub fn find(&self, id: i64) -> Option<(usize, usize)> {
        self.ids
            .par_iter()
            .enumerate()
            .find_map_first(|(l, ids)| ids.iter().position(|&x| x == id).map(|o| (l, o)))
    }

    /// Empty every list.
    pub fn reset(&mut self) {
        let nlist = self.nlist();
        *self = Self::new(nlist, self.code_len);
    }

    /// Add the lists to a file as three sections: `list_offsets` (u64, nlist + 1 entry
    /// offsets), `list_codes` and `list_ids` (every list concatenated, in list order).
    pub fn write(&self, w: &mut FileWriter<'_>) {
        let mut offsets = Vec::with_capacity(self.nlist() + 1);
        offsets.push(0u64);
        let mut codes = Vec::with_capacity(self.ntotal() * self.code_len);
        let mut ids = Vec::with_capacity(self.ntotal());
        for (c, i) in self.codes.iter().zip(&self.ids) {
            codes.extend_from_slice(c);
            ids.extend_from_slice(i);
            offsets.push(ids.len() as u64);
        }
        w.section_owned("list_offsets", offsets)
            .section_owned("list_codes", codes)
            .section_owned("list_ids", ids);
    }

    /// Read lists written by [`write`](Self::write), checking the offsets against the sections.
    /// Each list is a view of the file (mapped or read into memory).
    pub fn read(r: &FileReader, nlist: usize, code_len: usize) -> Result<Self> {
        let offsets = r.section_u64("list_offsets")?;
        let codes = r.section::<T>("list_codes")?;
        let ids = r.section_i64("list_ids")?;
        if offsets.len() != nlist + 1 {
            return Err(r.err(format!(
                "section 'list_offsets' holds {} entries, expected nlist + 1 = {}",
                offsets.len(),
                nlist + 1
            )));
        }
        let n = ids.len();
        if offsets[0] != 0
            || offsets.windows(2).any(|w| w[0] > w[1])
            || offsets[nlist] as usize != n
        {
            return Err(r.err(
                "section 'list_offsets' is not an increasing sequence from 0 to the number of ids",
            ));
        }
        if n.checked_mul(code_len) != Some(codes.len()) {
            return Err(r.err(format!(
                "section 'list_codes' holds {} values, expected {n} entries x {code_len}",
                codes.len()
            )));
        }
        let mut out = Self::new(nlist, code_len);
        for l in 0..nlist {
            let (a, b) = (offsets[l] as usize, offsets[l + 1] as usize);
            out.ids[l] = ids.slice(a, b - a);
            out.codes[l] = codes.slice(a * code_len, (b - a) * code_len);
        }
        Ok(out)
    }
}
