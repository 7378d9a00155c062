//! Reader and writers for Fashion-MNIST in its IDX distribution.
//!
//! The four files are `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`
//! and `t10k-labels-idx1-ubyte` (60,000 training and 10,000 test images, 28×28 grey, 10 classes).
//! Each may be gzip-compressed (`NAME.gz`, as published and as Debian's `dataset-fashion-mnist`
//! installs them in [`DEFAULT_DIR`]) or plain (`NAME`). When both exist the plain file is read: it
//! needs no decoding, and a plain file next to its `.gz` is normally its decompressed copy.
//!
//! IDX layout, big-endian: a 4-byte magic (`0x00000803` for the unsigned-byte 3-dimensional image
//! file, `0x00000801` for the 1-dimensional label file), one 4-byte size per dimension, then the
//! bytes row-major. The reader checks the magic, that images are 28×28, that the file length is
//! exactly what the header implies (no truncation, no trailing bytes), that the image and label
//! files hold the same number of items, that every label is `< 10`, and that a gzip stream decodes
//! (deflate data and CRC). Every error is one line naming the file.
//!
//! How 28×28×1 enters models built for CIFAR's 32×32×3: each image is zero-padded by 2 pixels on
//! every side to 32×32 (Fashion-MNIST's background is 0, so the padding is background) and the grey
//! plane is replicated into the three colour planes. Every model keeps its stem and the paper's
//! parameter counts, and a sample occupies [`IMAGE_BYTES`] = 3,072 bytes like a CIFAR sample, so
//! stream-buffer sizes and injection volumes are in the paper's units. [`super::load`] normalises by
//! the training set's own mean and std (the same for the three planes, which are equal), and the
//! paper's augmentation applies unchanged: a random 32×32 crop of the 4-pixel zero-padded image and
//! a horizontal flip with probability ½ (a mirrored garment or shoe is the same class).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{Dataset, IMAGE_BYTES, IMAGE_SIDE, PLANE};
use crate::error::{Error, Result};

/// Where Debian's `dataset-fashion-mnist` installs the files; read when no `--data-dir` is given.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Side of a Fashion-MNIST image.
pub const SOURCE_SIDE: usize = 28;
/// Pixels of one Fashion-MNIST image.
pub const SOURCE_PIXELS: usize = SOURCE_SIDE * SOURCE_SIDE;
/// Zero border added on each side to reach [`IMAGE_SIDE`].
pub const PAD: usize = (IMAGE_SIDE - SOURCE_SIDE) / 2;
/// Number of classes.
pub const CLASSES: usize = 10;
/// IDX magic of an unsigned-byte file with 3 dimensions (the images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// IDX magic of an unsigned-byte file with 1 dimension (the labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
const EXPECTED: &str = "expected the Fashion-MNIST IDX files train-images-idx3-ubyte, \
train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each plain or .gz";

/// The file to read for `name` in `dir`: `name` itself when it exists, else `name.gz`.
fn locate(dir: &Path, name: &str) -> Result<PathBuf> {
    let plain = dir.join(name);
    if plain.is_file() {
        return Ok(plain);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(Error::Data(format!(
        "{} not found, nor {name}.gz ({EXPECTED})",
        plain.display()
    )))
}

/// The bytes of an IDX file, gunzipped when its name ends in `.gz`.
fn read_idx_file(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if path.extension().and_then(|e| e.to_str()) != Some("gz") {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(|e| Error::Data(format!("{}: corrupt gzip stream ({e})", path.display())))?;
    Ok(out)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Checks the magic and reads the dimension sizes of an IDX file that must have `ndims` dimensions.
fn header(path: &Path, bytes: &[u8], magic: u32, what: &str) -> Result<Vec<usize>> {
    let ndims = (magic & 0xff) as usize;
    let head = 4 + 4 * ndims;
    if bytes.len() < 4 {
        return Err(Error::Data(format!(
            "{}: {} bytes, too short for an IDX header (truncated?)",
            path.display(),
            bytes.len()
        )));
    }
    let got = be32(bytes, 0);
    if got != magic {
        // An unsigned-byte IDX file with another number of dimensions gets a dimension error.
        let detail = if got & 0xffff_ff00 == magic & 0xffff_ff00 {
            format!(", i.e. {} dimensions where {what} have {ndims}", got & 0xff)
        } else {
            String::new()
        };
        return Err(Error::Data(format!(
            "{}: IDX magic 0x{got:08x}, expected 0x{magic:08x} ({what}){detail}",
            path.display()
        )));
    }
    if bytes.len() < head {
        return Err(Error::Data(format!(
            "{}: {} bytes, too short for the {head}-byte IDX header (truncated?)",
            path.display(),
            bytes.len()
        )));
    }
    Ok((0..ndims)
        .map(|d| be32(bytes, 4 + 4 * d) as usize)
        .collect())
}

/// Checks that the file is exactly `head + items * item` bytes long.
fn check_length(path: &Path, len: usize, head: usize, items: usize, item: usize) -> Result<()> {
    let want = head as u128 + items as u128 * item as u128;
    if (len as u128) < want {
        return Err(Error::Data(format!(
            "{}: truncated: {len} bytes, the header declares {items} items ({want} bytes)",
            path.display()
        )));
    }
    if len as u128 > want {
        return Err(Error::Data(format!(
            "{}: {} trailing bytes after the {items} items the header declares",
            path.display(),
            len as u128 - want
        )));
    }
    Ok(())
}

/// Parses an image file: returns the number of images and their 28×28 pixels, back to back.
fn parse_images<'a>(path: &Path, bytes: &'a [u8]) -> Result<(usize, &'a [u8])> {
    let dims = header(path, bytes, IMAGES_MAGIC, "unsigned-byte images")?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    if (rows, cols) != (SOURCE_SIDE, SOURCE_SIDE) {
        return Err(Error::Data(format!(
            "{}: images are {rows}×{cols}, expected {SOURCE_SIDE}×{SOURCE_SIDE}",
            path.display()
        )));
    }
    check_length(path, bytes.len(), 16, n, SOURCE_PIXELS)?;
    Ok((n, &bytes[16..]))
}

/// Parses a label file: returns its labels after checking each is `< CLASSES`.
fn parse_labels<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a [u8]> {
    let n = header(path, bytes, LABELS_MAGIC, "unsigned-byte labels")?[0];
    check_length(path, bytes.len(), 8, n, 1)?;
    let labels = &bytes[8..];
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= CLASSES)
    {
        return Err(Error::Data(format!(
            "{}: item {i} has label {l}, expected 0..{}",
            path.display(),
            CLASSES - 1
        )));
    }
    Ok(labels)
}

/// Writes one 28×28 grey image into the three 32×32 planes of `dst`: pixel (y, x) lands at
/// (y + PAD, x + PAD) of every plane, the border is 0.
pub fn pad_and_replicate(src: &[u8], dst: &mut [u8]) {
    debug_assert_eq!((src.len(), dst.len()), (SOURCE_PIXELS, IMAGE_BYTES));
    let (plane0, rest) = dst.split_at_mut(PLANE);
    plane0.fill(0);
    for (y, row) in src.chunks_exact(SOURCE_SIDE).enumerate() {
        let at = (y + PAD) * IMAGE_SIDE + PAD;
        plane0[at..at + SOURCE_SIDE].copy_from_slice(row);
    }
    for plane in rest.chunks_exact_mut(PLANE) {
        plane.copy_from_slice(plane0);
    }
}

/// Reads one split (an image file and a label file) into a CIFAR-shaped [`Dataset`].
fn read_split(dir: &Path, images: &str, labels: &str) -> Result<Dataset> {
    let ipath = locate(dir, images)?;
    let lpath = locate(dir, labels)?;
    let ibytes = read_idx_file(&ipath)?;
    let lbytes = read_idx_file(&lpath)?;
    let (n, pixels) = parse_images(&ipath, &ibytes)?;
    let labels = parse_labels(&lpath, &lbytes)?;
    if labels.len() != n {
        return Err(Error::Data(format!(
            "{}: {n} images but {} holds {} labels",
            ipath.display(),
            lpath.display(),
            labels.len()
        )));
    }
    let mut out = vec![0u8; n * IMAGE_BYTES];
    out.par_chunks_mut(IMAGE_BYTES)
        .zip(pixels.par_chunks(SOURCE_PIXELS))
        .for_each(|(dst, src)| pad_and_replicate(src, dst));
    Ok(Dataset {
        images: out,
        labels: labels.iter().map(|&l| l as u16).collect(),
        num_classes: CLASSES,
    })
}

/// Reads Fashion-MNIST from `dir` (plain or gzip files, see the module doc), each image padded to
/// 32×32 and replicated into three planes. Returns (train, test).
pub fn read_fashion_mnist(dir: &Path) -> Result<(Dataset, Dataset)> {
    if !dir.is_dir() {
        return Err(Error::Data(format!(
            "{} not found ({EXPECTED})",
            dir.display()
        )));
    }
    let train = read_split(dir, TRAIN_IMAGES, TRAIN_LABELS)?;
    let test = read_split(dir, TEST_IMAGES, TEST_LABELS)?;
    Ok((train, test))
}

/// Writes `bytes` to `path`, gzip-compressed when `gz`.
fn write_maybe_gz(path: &Path, bytes: &[u8], gz: bool) -> Result<()> {
    if !gz {
        return std::fs::write(path, bytes).map_err(|e| Error::io(path, e));
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).map_err(|e| Error::io(path, e))?;
    let out = enc.finish().map_err(|e| Error::io(path, e))?;
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}

/// Writes 28×28 grey images (`pixels`, [`SOURCE_PIXELS`] bytes each, back to back) as an IDX image
/// file, gzip-compressed when `gz` (the caller names the file, `.gz` or not).
pub fn write_idx_images(path: &Path, pixels: &[u8], gz: bool) -> Result<()> {
    if pixels.len() % SOURCE_PIXELS != 0 {
        return Err(Error::Data(format!(
            "{}: {} pixel bytes is not a whole number of {SOURCE_SIDE}×{SOURCE_SIDE} images",
            path.display(),
            pixels.len()
        )));
    }
    let n = (pixels.len() / SOURCE_PIXELS) as u32;
    let mut bytes = Vec::with_capacity(16 + pixels.len());
    for v in [IMAGES_MAGIC, n, SOURCE_SIDE as u32, SOURCE_SIDE as u32] {
        bytes.extend_from_slice(&v.to_be_bytes());
    }
    bytes.extend_from_slice(pixels);
    write_maybe_gz(path, &bytes, gz)
}

/// Writes labels as an IDX label file, gzip-compressed when `gz`. Labels are written as given
/// (a test may write an out-of-range one on purpose).
pub fn write_idx_labels(path: &Path, labels: &[u8], gz: bool) -> Result<()> {
    let mut bytes = Vec::with_capacity(8 + labels.len());
    bytes.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    bytes.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    bytes.extend_from_slice(labels);
    write_maybe_gz(path, &bytes, gz)
}

/// Writes the four Fashion-MNIST files into `dir` under their distribution names (with `.gz` when
/// `gz`). `train` and `test` are (28×28 pixels back to back, labels).
pub fn write_fashion_mnist(
    dir: &Path,
    train: (&[u8], &[u8]),
    test: (&[u8], &[u8]),
    gz: bool,
) -> Result<()> {
    let ext = if gz { ".gz" } else { "" };
    for ((images, labels), (iname, lname)) in [
        (train, (TRAIN_IMAGES, TRAIN_LABELS)),
        (test, (TEST_IMAGES, TEST_LABELS)),
    ] {
        write_idx_images(&dir.join(format!("{iname}{ext}")), images, gz)?;
        write_idx_labels(&dir.join(format!("{lname}{ext}")), labels, gz)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_puts_the_source_in_the_middle_of_every_plane() {
        let src: Vec<u8> = (0..SOURCE_PIXELS).map(|i| (i % 251 + 1) as u8).collect();
        let mut dst = vec![7u8; IMAGE_BYTES];
        pad_and_replicate(&src, &mut dst);
        for c in 0..3 {
            for y in 0..IMAGE_SIDE {
                for x in 0..IMAGE_SIDE {
                    let inside = (2..30).contains(&y) && (2..30).contains(&x);
                    let want = if inside {
                        src[(y - 2) * 28 + (x - 2)]
                    } else {
                        0
                    };
                    assert_eq!(dst[c * PLANE + y * IMAGE_SIDE + x], want, "c{c} y{y} x{x}");
                }
            }
        }
    }

    #[test]
    fn a_wrong_dimension_count_is_reported_as_such() {
        let p = Path::new("/x/train-images-idx3-ubyte");
        let mut b = vec![0u8; 16];
        b[..4].copy_from_slice(&0x0000_0802u32.to_be_bytes());
        let e = parse_images(p, &b).unwrap_err().to_string();
        assert!(
            e.contains("/x/train-images-idx3-ubyte") && e.contains("2 dimensions"),
            "{e}"
        );
    }
}
