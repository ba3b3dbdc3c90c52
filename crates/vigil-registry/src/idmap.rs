//! The entries of one kind, by id.

use std::fmt;

use vigil_model::{DeviceId, DoctorId, GatewayId, InstitutionId, PatientId};

use crate::{Device, Doctor, Gateway, Institution, Patient};

/// A registry entry, found by its id.
pub trait Keyed {
    type Key: Ord + fmt::Display + fmt::Debug;
    fn key(&self) -> &Self::Key;
}

macro_rules! keyed {
    ($entry:ty, $key:ty) => {
        impl Keyed for $entry {
            type Key = $key;
            fn key(&self) -> &$key {
                &self.id
            }
        }
    };
}
keyed!(Institution, InstitutionId);
keyed!(Doctor, DoctorId);
keyed!(Patient, PatientId);
keyed!(Gateway, GatewayId);
keyed!(Device, DeviceId);

/// The entries of one kind in the order of their ids, found by bisection. Read like a
/// `BTreeMap` from id to entry, in half its memory: an entry's id is not kept a second
/// time as its key, and there is no node to fill (a registry of 100 000 patients has
/// 262 500 devices). A registry is built once and never changed in place.
#[derive(Clone, PartialEq)]
pub struct IdMap<V> {
    entries: Vec<V>,
}

impl<V: Keyed> IdMap<V> {
    /// From entries in any order. An id given more than once is reported to
    /// `duplicate` (once for each entry after the first), and its last entry kept.
    pub(crate) fn build(mut entries: Vec<V>, mut duplicate: impl FnMut(&V::Key)) -> IdMap<V> {
        // Stable: the entries of one id stay in the order given.
        entries.sort_by(|a, b| a.key().cmp(b.key()));
        entries.dedup_by(|later, kept| {
            let same = later.key() == kept.key();
            if same {
                duplicate(later.key());
                std::mem::swap(later, kept);
            }
            same
        });
        entries.shrink_to_fit();
        IdMap { entries }
    }

    /// The entry's place in the order of the ids.
    pub(crate) fn position(&self, id: &V::Key) -> Option<usize> {
        self.entries.binary_search_by(|e| e.key().cmp(id)).ok()
    }

    /// The entry at a place in the order of the ids.
    pub(crate) fn at(&self, place: usize) -> Option<&V> {
        self.entries.get(place)
    }

    /// The entry of an id.
    pub fn get(&self, id: &V::Key) -> Option<&V> {
        self.position(id).and_then(|i| self.entries.get(i))
    }

    pub fn contains_key(&self, id: &V::Key) -> bool {
        self.position(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, in the order of their ids.
    pub fn values(&self) -> std::slice::Iter<'_, V> {
        self.entries.iter()
    }

    /// The ids, in order.
    pub fn keys(&self) -> impl Iterator<Item = &V::Key> {
        self.entries.iter().map(Keyed::key)
    }

    /// (id, entry) in the order of the ids.
    pub fn iter(&self) -> impl Iterator<Item = (&V::Key, &V)> {
        self.into_iter()
    }
}

impl<V: Keyed> std::ops::Index<&V::Key> for IdMap<V> {
    type Output = V;

    /// The entry of an id that must be there (as a `BTreeMap`'s index, it panics
    /// when it is not).
    fn index(&self, id: &V::Key) -> &V {
        match self.get(id) {
            Some(v) => v,
            None => panic!("no entry {id} in the registry"),
        }
    }
}

impl<V: Keyed + fmt::Debug> fmt::Debug for IdMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a, V: Keyed> IntoIterator for &'a IdMap<V> {
    type Item = (&'a V::Key, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, V>, fn(&'a V) -> (&'a V::Key, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|e| (e.key(), e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

    use super::*;

    fn gateway(id: &str, patient: Option<&str>) -> Gateway {
        Gateway {
            id: id.parse().unwrap(),
            patient: patient.map(|p| p.parse().unwrap()),
        }
    }

    #[test]
    fn entries_are_found_by_id_in_id_order_and_the_last_of_a_duplicate_is_kept() {
        let mut dupes = Vec::new();
        let map = IdMap::build(
            vec![
                gateway("gw-3", None),
                gateway("gw-1", Some("p-1")),
                gateway("gw-2", None),
                gateway("gw-1", Some("p-2")),
                gateway("gw-1", Some("p-3")),
            ],
            |id| dupes.push(id.to_string()),
        );
        assert_eq!(dupes, ["gw-1", "gw-1"]);
        assert_eq!(map.len(), 3);
        let keys: Vec<&str> = map.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["gw-1", "gw-2", "gw-3"]);
        let gw1: GatewayId = "gw-1".parse().unwrap();
        assert_eq!(map[&gw1].patient.as_ref().unwrap().as_str(), "p-3");
        assert!(map.contains_key(&"gw-2".parse().unwrap()));
        assert!(map.get(&"gw-0".parse().unwrap()).is_none());
        assert!(!map.contains_key(&"gw-4".parse().unwrap()));
        assert_eq!(map.iter().count(), 3);
        assert_eq!((&map).into_iter().map(|(k, _)| k).next(), Some(&gw1));
    }
}
