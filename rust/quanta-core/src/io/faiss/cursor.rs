//! Bounded little-endian reading of a faiss file: every read checks that the bytes are there,
//! every vector length is checked against what is left before anything is allocated.

use crate::error::{Error, Result};

/// A read position in the bytes of a faiss file.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    origin: &'a str,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8], origin: &'a str) -> Self {
        Cursor {
            bytes,
            pos: 0,
            origin,
        }
    }

    /// A format error naming the file and the offset where the problem was found.
    pub(super) fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::Format(format!(
            "{}: faiss file, at byte {}: {msg}",
            self.origin, self.pos
        ))
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }

    pub(super) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next `n` bytes.
    pub(super) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "truncated: {what} needs {n} bytes, {} are left",
                self.remaining()
            )));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub(super) fn fourcc(&mut self, what: &str) -> Result<[u8; 4]> {
        self.array::<4>(what)
    }

    pub(super) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A C++ `bool` (one byte, 0 or 1).
    pub(super) fn bool(&mut self, what: &str) -> Result<bool> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(format!("{what} is {v}, not a bool (0 or 1)"))),
        }
    }

    pub(super) fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array::<4>(what)?))
    }

    pub(super) fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array::<8>(what)?))
    }

    pub(super) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array::<8>(what)?))
    }

    pub(super) fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array::<4>(what)?))
    }

    /// A `size_t` that must fit `usize` and be at most `max`.
    pub(super) fn size(&mut self, what: &str, max: usize) -> Result<usize> {
        let v = self.u64(what)?;
        match usize::try_from(v) {
            Ok(v) if v <= max => Ok(v),
            _ => Err(self.err(format!("{what} is {v}, above the limit {max}"))),
        }
    }

    /// An `int` that must be in `1..=max`.
    pub(super) fn positive_i32(&mut self, what: &str, max: usize) -> Result<usize> {
        let v = self.i32(what)?;
        if v <= 0 || v as usize > max {
            return Err(self.err(format!("{what} is {v}, not in 1..={max}")));
        }
        Ok(v as usize)
    }

    /// A non-negative `int64` count, at most `max`.
    pub(super) fn count_i64(&mut self, what: &str, max: usize) -> Result<usize> {
        let v = self.i64(what)?;
        if v < 0 || v as u64 > max as u64 {
            return Err(self.err(format!("{what} is {v}, not in 0..={max}")));
        }
        Ok(v as usize)
    }

    /// The element count of a vector of `elem`-byte values (faiss `WRITEVECTOR`: a `size_t`
    /// count, then the values), checked against the bytes left.
    fn vec_len(&mut self, elem: usize, what: &str) -> Result<usize> {
        let n = self.u64(what)?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(elem))
            .filter(|&b| b <= self.remaining());
        match fits {
            Some(_) => Ok(n as usize),
            None => Err(self.err(format!(
                "truncated: {what} declares {n} values of {elem} bytes, {} bytes are left",
                self.remaining()
            ))),
        }
    }

    pub(super) fn vec_u8(&mut self, what: &str) -> Result<Vec<u8>> {
        let n = self.vec_len(1, what)?;
        Ok(self.take(n, what)?.to_vec())
    }

    pub(super) fn vec_f32(&mut self, what: &str) -> Result<Vec<f32>> {
        let n = self.vec_len(4, what)?;
        self.f32s(n, what)
    }

    pub(super) fn vec_i64(&mut self, what: &str) -> Result<Vec<i64>> {
        let n = self.vec_len(8, what)?;
        self.i64s(n, what)
    }

    pub(super) fn vec_u64(&mut self, what: &str) -> Result<Vec<u64>> {
        let n = self.vec_len(8, what)?;
        Ok(self
            .take(n * 8, what)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }

    /// Skip a vector of `elem`-byte values.
    pub(super) fn skip_vec(&mut self, elem: usize, what: &str) -> Result<()> {
        let n = self.vec_len(elem, what)?;
        self.take(n * elem, what).map(|_| ())
    }

    /// `n` raw floats (no count before them).
    pub(super) fn f32s(&mut self, n: usize, what: &str) -> Result<Vec<f32>> {
        let b = n
            .checked_mul(4)
            .ok_or_else(|| self.err(format!("{what}: {n} floats overflow")))?;
        Ok(self
            .take(b, what)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    }

    /// `n` raw int64 (no count before them).
    pub(super) fn i64s(&mut self, n: usize, what: &str) -> Result<Vec<i64>> {
        let b = n
            .checked_mul(8)
            .ok_or_else(|| self.err(format!("{what}: {n} ids overflow")))?;
        Ok(self
            .take(b, what)?
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }
}

/// Little-endian output, faiss's `WRITE1` / `WRITEVECTOR`.
#[derive(Default)]
pub(super) struct Out {
    pub(super) buf: Vec<u8>,
}

impl Out {
    pub(super) fn fourcc(&mut self, h: &[u8; 4]) -> &mut Self {
        self.buf.extend_from_slice(h);
        self
    }
    pub(super) fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub(super) fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(super) fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(super) fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(super) fn f32(&mut self, v: f32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(super) fn vec_u8(&mut self, v: &[u8]) -> &mut Self {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }
    pub(super) fn vec_f32(&mut self, v: &[f32]) -> &mut Self {
        self.u64(v.len() as u64);
        self.f32s(v)
    }
    /// Every value of `v`, little-endian, without a count.
    fn all<T: Copy, const N: usize>(&mut self, v: &[T], le: fn(T) -> [u8; N]) -> &mut Self {
        for &x in v {
            self.buf.extend_from_slice(&le(x));
        }
        self
    }
    pub(super) fn f32s(&mut self, v: &[f32]) -> &mut Self {
        self.all(v, f32::to_le_bytes)
    }
    pub(super) fn vec_i64(&mut self, v: &[i64]) -> &mut Self {
        self.u64(v.len() as u64);
        self.i64s(v)
    }
    pub(super) fn i64s(&mut self, v: &[i64]) -> &mut Self {
        self.all(v, i64::to_le_bytes)
    }
    pub(super) fn vec_u64(&mut self, v: &[u64]) -> &mut Self {
        self.u64(v.len() as u64);
        self.all(v, u64::to_le_bytes)
    }
}
