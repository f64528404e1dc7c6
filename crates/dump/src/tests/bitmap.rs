//! The rank index against a naive count.

use crate::model::Bitmap;

fn naive_rank(src: &[u8], i: u64) -> u64 {
    (0..i)
        .filter(|&b| src[(b / 8) as usize] >> (b % 8) & 1 == 1)
        .count() as u64
}

#[test]
fn rank_matches_naive_count_at_every_boundary() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for bits in [0u64, 1, 7, 8, 63, 64, 65, 511, 512, 513, 1024, 1031, 4097] {
        let mut src: Vec<u8> = (0..bits.div_ceil(8))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        // Trailing junk after the map must not count.
        src.extend_from_slice(&[0xFF; 9]);
        let b = Bitmap::new(&src, 0, bits);
        for i in 0..=bits {
            assert_eq!(
                b.rank(&src, i),
                naive_rank(&src, i.min(bits)),
                "bits {bits} i {i}"
            );
            if i < bits {
                assert_eq!(b.get(&src, i), src[(i / 8) as usize] >> (i % 8) & 1 == 1);
            }
        }
        assert!(!b.get(&src, bits));
        assert_eq!(b.rank(&src, u64::MAX), b.rank(&src, bits));
        // Runs cover exactly the set bits.
        let total = b.rank(&src, bits);
        let runs = b.runs(&src, total);
        assert_eq!(runs.iter().map(|r| r.1).sum::<u64>(), total);
        for (s, c) in runs {
            for i in s..s + c {
                assert!(b.get(&src, i));
            }
        }
    }
}

#[test]
fn bitmap_at_an_offset_and_full_words() {
    let mut src = vec![0xAAu8; 3];
    src.extend_from_slice(&[0xFF; 16]);
    src.push(0x01);
    let b = Bitmap::new(&src, 3, 129);
    assert_eq!(b.rank(&src, 129), 129);
    assert_eq!(b.runs(&src, 129), vec![(0, 129)]);
    // Limited to the first 100 set bits (pages the file really holds).
    assert_eq!(b.runs(&src, 100), vec![(0, 100)]);
}
