//! Lookup keys: a name as lowercased wire bytes, so that every ancestor of a name is a
//! sub-slice of it and the walk from the apex down to a query name hashes slices of one
//! stack buffer without allocating.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::ops::Deref;

use hickory_proto::rr::Name;

/// The owned key of a node: lowercased wire form (length-prefixed labels, then the root 0).
/// Names up to [`INLINE_KEY`] bytes, most names of a large zone, live inside the hash table
/// bucket: a lookup hit then reads no separate key allocation (one cache miss fewer).
#[derive(Clone)]
pub(crate) enum NameKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

/// Longest inline key; with the tag and length the key is 32 bytes.
const INLINE_KEY: usize = 30;

impl NameKey {
    fn as_slice(&self) -> &[u8] {
        match self {
            NameKey::Inline { len, bytes } => &bytes[..usize::from(*len).min(INLINE_KEY)],
            NameKey::Heap(bytes) => bytes,
        }
    }
}

impl From<&[u8]> for NameKey {
    fn from(wire: &[u8]) -> Self {
        if wire.len() <= INLINE_KEY {
            let mut bytes = [0u8; INLINE_KEY];
            bytes[..wire.len()].copy_from_slice(wire);
            NameKey::Inline {
                len: wire.len() as u8,
                bytes,
            }
        } else {
            NameKey::Heap(wire.into())
        }
    }
}

impl Deref for NameKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for NameKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

// Hash and Eq go through the bytes, as `Borrow<[u8]>` requires.
impl Hash for NameKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq for NameKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for NameKey {}

impl fmt::Debug for NameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_slice())
    }
}

/// `HashMap` hasher for [`NameKey`]s. Keys come from the operator's zone files and queries
/// only probe, so a fixed, fast hash is enough; there is no HashDoS surface because an
/// attacker cannot insert keys. Folded 64x64->128 multiplies (as in foldhash and wyhash):
/// FxHash's single multiply collides far too often on names that differ in a few digits.
pub(crate) type KeyHasher = BuildHasherDefault<FoldHasher>;

#[derive(Default, Clone, Copy)]
pub(crate) struct FoldHasher(u64);

const MIX: u64 = 0x9e37_79b9_7f4a_7c15;
const FINISH: u64 = 0xd6e8_feb8_6659_fd93;

#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

impl FoldHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = folded_multiply(self.0 ^ word, MIX);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        folded_multiply(self.0, FINISH)
    }
}

/// Longest encoded name (RFC 1035 2.3.4) and therefore most labels (127 plus the root).
const MAX_WIRE: usize = 255;
const MAX_LABELS: usize = 128;

/// A query name in lowercased wire form on the stack, with the offset of every label: what
/// every lookup takes. Made from a message's bytes ([`QueryName::from_wire`]) or from labels
/// ([`QueryName::from_labels`]), without allocating.
#[derive(Clone)]
pub struct QueryName {
    buf: [u8; MAX_WIRE],
    len: usize,
    label_starts: [u8; MAX_LABELS],
    labels: usize,
}

/// The zone store's own name for it.
pub(crate) type WireName = QueryName;

impl QueryName {
    /// Encodes `name` (treated as absolute). A hickory `Name` never exceeds 255 bytes; were
    /// one to, the excess labels are dropped rather than panicking.
    #[inline]
    pub(crate) fn new(name: &Name) -> Self {
        Self::from_labels(name.iter())
    }

    /// The name made of `labels`, leftmost first (the root implied), lowercased. Labels past
    /// the 255-byte limit, or longer than 63 bytes, end the name there.
    #[inline]
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut wire = QueryName {
            buf: [0; MAX_WIRE],
            len: 0,
            label_starts: [0; MAX_LABELS],
            labels: 0,
        };
        for label in labels {
            let end = wire.len + 1 + label.len();
            // Keep one byte for the root label.
            if end >= MAX_WIRE || wire.labels >= MAX_LABELS - 1 || label.len() > 63 {
                break;
            }
            wire.label_starts[wire.labels] = wire.len as u8;
            wire.labels += 1;
            wire.buf[wire.len] = label.len() as u8;
            for (dst, src) in wire.buf[wire.len + 1..end].iter_mut().zip(label) {
                *dst = src.to_ascii_lowercase();
            }
            wire.len = end;
        }
        // The root label.
        wire.buf[wire.len] = 0;
        wire.len += 1;
        wire
    }

    /// The uncompressed name at the start of `message`, lowercased, and the bytes it took
    /// there. `None` for a compression pointer, a reserved label type, or a name over 255
    /// bytes: the caller then leaves the message to a full decoder.
    #[inline]
    pub fn from_wire(message: &[u8]) -> Option<(Self, usize)> {
        let mut wire = QueryName {
            buf: [0; MAX_WIRE],
            len: 0,
            label_starts: [0; MAX_LABELS],
            labels: 0,
        };
        loop {
            let len = usize::from(*message.get(wire.len)?);
            if len == 0 {
                break;
            }
            let end = wire.len + 1 + len;
            if len > 63 || end >= MAX_WIRE || wire.labels >= MAX_LABELS - 1 {
                return None;
            }
            let label = message.get(wire.len + 1..end)?;
            wire.label_starts[wire.labels] = wire.len as u8;
            wire.labels += 1;
            wire.buf[wire.len] = len as u8;
            for (dst, src) in wire.buf[wire.len + 1..end].iter_mut().zip(label) {
                *dst = src.to_ascii_lowercase();
            }
            wire.len = end;
        }
        wire.buf[wire.len] = 0;
        wire.len += 1;
        let len = wire.len;
        Some((wire, len))
    }

    /// The labels, leftmost first, lowercased (the root not included).
    pub fn labels(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator + '_ {
        (0..self.labels).map(move |i| {
            let start = usize::from(self.label_starts[i]);
            let len = usize::from(self.buf[start]);
            &self.buf[start + 1..start + 1 + len]
        })
    }

    /// Number of labels, not counting the root.
    pub fn label_count(&self) -> usize {
        self.labels
    }

    /// The whole name, lowercased wire form.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The parent name (the root's parent is the root).
    pub fn parent(&self) -> QueryName {
        let mut parent = self.clone();
        if self.labels == 0 {
            return parent;
        }
        let skip = if self.labels == 1 {
            self.len - 1
        } else {
            usize::from(self.label_starts[1])
        };
        parent.buf[..self.len - skip].copy_from_slice(&self.buf[skip..self.len]);
        parent.len = self.len - skip;
        parent.labels = self.labels - 1;
        for i in 0..parent.labels {
            parent.label_starts[i] = self.label_starts[i + 1] - skip as u8;
        }
        parent
    }

    /// The ancestor-or-self with `labels` labels (0 is the root). More labels than the name
    /// has gives the name itself.
    #[inline]
    pub fn ancestor(&self, labels: usize) -> &[u8] {
        if labels >= self.labels {
            return self.bytes();
        }
        if labels == 0 {
            return &self.buf[self.len - 1..self.len];
        }
        let start = usize::from(self.label_starts[self.labels - labels]);
        &self.buf[start..self.len]
    }
}

/// The owned key of `name`.
pub(crate) fn key_of(name: &Name) -> NameKey {
    WireName::new(name).bytes().into()
}

/// The key of `*.<parent>`, where `parent` is a key.
pub(crate) fn wildcard_child(parent: &[u8], out: &mut [u8; MAX_WIRE + 2]) -> usize {
    let len = (parent.len() + 2).min(out.len());
    out[0] = 1;
    out[1] = b'*';
    out[2..len].copy_from_slice(&parent[..len - 2]);
    len
}

/// The parent key of a key (None for the root).
pub(crate) fn parent_key(key: &[u8]) -> Option<&[u8]> {
    let first = usize::from(*key.first()?);
    if first == 0 {
        return None;
    }
    key.get(first + 1..)
}

/// Buffer size [`wildcard_child`] needs.
pub(crate) const WILDCARD_BUF: usize = MAX_WIRE + 2;

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("test name")
    }

    #[test]
    fn names_from_the_wire_are_lowercased_and_parents_drop_a_label() {
        let (wire, used) = QueryName::from_wire(b"\x03WwW\x07Example\x03COM\x00\x00\x01").unwrap();
        assert_eq!(used, 17);
        assert_eq!(wire.bytes(), b"\x03www\x07example\x03com\x00");
        let parent = wire.parent();
        assert_eq!(parent.bytes(), b"\x07example\x03com\x00");
        assert_eq!(parent.label_count(), 2);
        assert_eq!(parent.ancestor(1), b"\x03com\x00");
        assert_eq!(parent.parent().parent().bytes(), b"\x00");
        assert!(
            QueryName::from_wire(b"\x03www\xc0\x0c").is_none(),
            "pointer"
        );
        assert!(QueryName::from_wire(b"\x03ww").is_none(), "short");
    }

    #[test]
    fn ancestors_are_suffixes_lowercased() {
        let wire = WireName::new(&name("WWW.Example.COM."));
        assert_eq!(wire.label_count(), 3);
        assert_eq!(wire.bytes(), b"\x03www\x07example\x03com\x00");
        assert_eq!(wire.ancestor(2), b"\x07example\x03com\x00");
        assert_eq!(wire.ancestor(0), b"\x00");
        assert_eq!(wire.ancestor(9), wire.bytes());
    }

    #[test]
    fn short_and_long_keys_are_the_same_bytes() {
        use std::collections::HashMap;
        let short = name("a.example.");
        let long = name("a-rather-long-label.and-another-one.example.");
        let mut map: HashMap<NameKey, u8, KeyHasher> = HashMap::default();
        map.insert(key_of(&short), 1);
        map.insert(key_of(&long), 2);
        assert!(matches!(key_of(&short), NameKey::Inline { .. }));
        assert!(matches!(key_of(&long), NameKey::Heap(_)));
        assert_eq!(map.get(WireName::new(&short).bytes()), Some(&1));
        assert_eq!(map.get(WireName::new(&long).bytes()), Some(&2));
        assert_eq!(&*key_of(&long), WireName::new(&long).bytes());
    }

    #[test]
    fn wildcard_and_parent_keys() {
        let key = key_of(&name("deep.example."));
        let mut buf = [0u8; WILDCARD_BUF];
        let len = wildcard_child(&key, &mut buf);
        assert_eq!(&buf[..len], &*key_of(&name("*.deep.example.")));
        assert_eq!(parent_key(&key), Some(&*key_of(&name("example."))));
        assert_eq!(parent_key(b"\x00"), None);
    }

    #[test]
    fn similar_names_do_not_collide() {
        use std::collections::HashSet;
        use std::hash::BuildHasher;
        // A zone's names differ in a few digits; a weak hash makes lookups compare keys over
        // and over (FxHash alone gave 2.7% full collisions here).
        let hasher = KeyHasher::default();
        let hashes: HashSet<u64> = (0..20_000)
            .map(|i| hasher.hash_one(&*key_of(&name(&format!("host{i}.bench.example.")))))
            .collect();
        assert_eq!(hashes.len(), 20_000);
    }
}
