//! The ordinals of children in their parents' packed roll-ups, as this process has read them.

use std::{collections::HashMap, sync::Mutex};

use govpulse_core::AgencyId;

use crate::StoreError;

/// Children's ordinals in their parents' packed roll-ups, per ordinals list
/// (`P:{root}:k:<parent>:ids`, written with a batch's counts, `tree_write.rs`). A list only grows and an entry never
/// changes, so a reader asks only for the last entry it knows and those past it. The list's
/// first entry marks its creation: a list created again (the data was flushed) has another
/// mark, and a list that is not the one cached (shorter, or with another child at the last
/// known place: restored from a backup) differs at that entry; either way what was cached
/// is dropped and the whole list read again.
#[derive(Debug, Default)]
pub(crate) struct OrdinalCache {
    lists: Mutex<HashMap<String, Ordinals>>,
}

/// What is known of one ordinals list.
#[derive(Debug, Default)]
struct Ordinals {
    /// The list's first entry.
    created: Vec<u8>,
    /// How many entries are known, counting the first.
    len: usize,
    /// Child id → ordinal (its index in the list, from 1).
    of: foldhash::HashMap<String, usize>,
}

impl OrdinalCache {
    /// From which index the next read of `list` starts: its last known entry (which the
    /// read must repeat), or 0.
    pub(crate) fn next_read(&self, list: &str) -> usize {
        self.lock()
            .get(list)
            .map_or(0, |ordinals| ordinals.len.saturating_sub(1))
    }

    /// Takes in a read of `list`: `created`, its first entry (`None`: there is no list, no
    /// child was counted), and `added`, its entries from index `from` on. Answers the
    /// ordinals of `children` (`None` for a child never counted), or `None` when the read
    /// does not continue what is cached (the list was created again or replaced, or the
    /// cache was dropped meanwhile): then the whole list must be read, `from` 0.
    pub(crate) fn update<'c>(
        &self,
        list: &str,
        created: Option<&[u8]>,
        from: usize,
        added: Vec<String>,
        children: impl IntoIterator<Item = &'c AgencyId>,
    ) -> Option<Vec<Option<usize>>> {
        let mut lists = self.lock();
        let Some(created) = created else {
            lists.remove(list);
            return Some(children.into_iter().map(|_| None).collect());
        };
        let ordinals = lists.entry(list.to_owned()).or_default();
        if ordinals.len > 0 && ordinals.created != created {
            *ordinals = Ordinals::default();
        }
        if from > ordinals.len || (from < ordinals.len && added.is_empty()) {
            *ordinals = Ordinals::default();
            return None;
        }
        ordinals.created = created.to_vec();
        for (index, id) in (from..).zip(added) {
            if index < ordinals.len {
                // An entry known already (the last one, or one another reader added
                // meanwhile) must be the same.
                let same = if index == 0 {
                    id.as_bytes() == ordinals.created
                } else {
                    ordinals.of.get(&id) == Some(&index)
                };
                if !same {
                    *ordinals = Ordinals::default();
                    return None;
                }
            } else {
                if index > 0 {
                    ordinals.of.insert(id, index);
                }
                ordinals.len = index + 1;
            }
        }
        Some(
            children
                .into_iter()
                .map(|child| ordinals.of.get(child.as_str()).copied())
                .collect(),
        )
    }

    /// Takes in the whole of `list` as read (`all`: its every entry, the creation mark first;
    /// empty when there is no list), after [`OrdinalCache::update`] found the cache not
    /// continued by a read of its end. Answers as `update` does; an error when even the
    /// whole list does not read as one (it changed while it was read).
    pub(crate) fn update_whole<'c>(
        &self,
        list: &str,
        all: Vec<String>,
        children: impl IntoIterator<Item = &'c AgencyId>,
    ) -> Result<Vec<Option<usize>>, StoreError> {
        let created = all.first().map(|mark| mark.as_bytes().to_vec());
        self.update(list, created.as_deref(), 0, all, children)
            .ok_or_else(|| StoreError::Unexpected(format!("{list} changed while it was read")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Ordinals>> {
        // The map stays consistent whatever a panicking holder did: every update of an
        // entry either completes or leaves a prefix of the list.
        self.lists
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[&str]) -> Vec<AgencyId> {
        ids.iter()
            .map(|id| AgencyId::parse(id).expect("a valid id"))
            .collect()
    }

    fn entries(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| (*e).to_owned()).collect()
    }

    const LIST: &str = "p:{a}:k:a:ids";

    #[test]
    fn a_first_read_takes_the_whole_list_and_later_reads_from_the_last_known_entry() {
        let cache = OrdinalCache::default();
        let children = ids(&["a.x", "a.y", "a.z"]);
        assert_eq!(cache.next_read(LIST), 0);
        let mark = b"created 1.0";
        let first = cache.update(
            LIST,
            Some(mark),
            0,
            entries(&["created 1.0", "a.y", "a.x"]),
            &children,
        );
        assert_eq!(first, Some(vec![Some(2), Some(1), None]));
        assert_eq!(cache.next_read(LIST), 2);
        let later = cache.update(LIST, Some(mark), 2, entries(&["a.x", "a.z"]), &children);
        assert_eq!(later, Some(vec![Some(2), Some(1), Some(3)]));
        assert_eq!(cache.next_read(LIST), 3);
        let unchanged = cache.update(LIST, Some(mark), 3, entries(&["a.z"]), &children);
        assert_eq!(unchanged, Some(vec![Some(2), Some(1), Some(3)]));
    }

    #[test]
    fn two_readers_adding_the_same_entries_add_them_once() {
        let cache = OrdinalCache::default();
        let children = ids(&["a.x", "a.y"]);
        cache.update(LIST, Some(b"m"), 0, entries(&["m", "a.x"]), &children);
        // Both read from index 1; the second's entries are already known.
        cache.update(LIST, Some(b"m"), 1, entries(&["a.x", "a.y"]), &children);
        let second = cache.update(LIST, Some(b"m"), 1, entries(&["a.x", "a.y"]), &children);
        assert_eq!(second, Some(vec![Some(1), Some(2)]));
        assert_eq!(cache.next_read(LIST), 2);
    }

    #[test]
    fn a_list_created_again_drops_what_was_cached() {
        let cache = OrdinalCache::default();
        let children = ids(&["a.x", "a.y"]);
        cache.update(
            LIST,
            Some(b"created 1.0"),
            0,
            entries(&["created 1.0", "a.x", "a.y"]),
            &children,
        );
        // Flushed, then the children counted again in the other order: a read from where the
        // cache ended cannot be used.
        let stale = cache.update(LIST, Some(b"created 2.0"), 2, entries(&["a.x"]), &children);
        assert_eq!(stale, None);
        assert_eq!(cache.next_read(LIST), 0);
        let again = cache.update(
            LIST,
            Some(b"created 2.0"),
            0,
            entries(&["created 2.0", "a.y", "a.x"]),
            &children,
        );
        assert_eq!(again, Some(vec![Some(2), Some(1)]));
    }

    #[test]
    fn a_list_restored_from_a_backup_drops_what_was_cached() {
        let cache = OrdinalCache::default();
        let children = ids(&["a.x", "a.y", "a.z"]);
        let known = entries(&["m", "a.x", "a.y", "a.z"]);
        cache.update(LIST, Some(b"m"), 0, known.clone(), &children);
        // The backup held two children: shorter than the cache.
        assert_eq!(
            cache.update(LIST, Some(b"m"), 3, Vec::new(), &children),
            None
        );
        cache.update(LIST, Some(b"m"), 0, known, &children);
        // The backup held one child, and another came after it: a different third entry.
        let replaced = cache.update(LIST, Some(b"m"), 3, entries(&["a.y"]), &children);
        assert_eq!(replaced, None);
        let whole = cache.update(
            LIST,
            Some(b"m"),
            0,
            entries(&["m", "a.x", "a.z", "a.y"]),
            &children,
        );
        assert_eq!(whole, Some(vec![Some(1), Some(3), Some(2)]));
    }

    #[test]
    fn no_list_means_no_child_was_counted_and_drops_the_cache() {
        let cache = OrdinalCache::default();
        let children = ids(&["a.x"]);
        cache.update(LIST, Some(b"m"), 0, entries(&["m", "a.x"]), &children);
        assert_eq!(
            cache.update(LIST, None, 1, Vec::new(), &children),
            Some(vec![None])
        );
        assert_eq!(cache.next_read(LIST), 0);
    }
}
