//! Helpers shared by the scanner tests: deterministic randomness and a reader that splits its
//! input into tiny reads, so that every scanner state is suspended at a read boundary somewhere.
#![allow(dead_code)]

use std::io::{self, BufRead, Read};

/// xorshift64*: deterministic, dependency-free randomness for generated documents.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A reader that hands out the input in small random chunks, so that every scanner state gets
/// suspended at a chunk boundary somewhere.
pub struct Dribble<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
    rng: Rng,
}

impl<'a> Dribble<'a> {
    pub fn new(data: &'a [u8], seed: u64) -> Self {
        Dribble {
            data,
            pos: 0,
            chunk: 0,
            rng: Rng(seed | 1),
        }
    }
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Dribble<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.chunk == 0 {
            self.chunk = 1 + self.rng.below(4);
        }
        let end = (self.pos + self.chunk).min(self.data.len());
        Ok(&self.data[self.pos..end])
    }

    fn consume(&mut self, amount: usize) {
        self.pos += amount;
        self.chunk = 0;
    }
}

/// A reader whose every read fails, as a dying disk's would.
pub struct Failing;

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }
}
