//! A page of a datasource's records, bounded by count and by bytes: both stores fill one the same
//! way, so their pages cannot differ.

use super::{MAX_PAGE_BYTES, StoredRecord};
use crate::store::{Cursor, MAX_PAGE_SIZE, Page};

/// Takes records in sequence order until the page is full.
pub(crate) struct RecordPage {
    limit: usize,
    bytes: usize,
    records: Vec<StoredRecord>,
}

impl RecordPage {
    pub(crate) fn new(limit: u32) -> Self {
        let limit = limit.clamp(1, MAX_PAGE_SIZE) as usize;
        Self { limit, bytes: 0, records: Vec::with_capacity(limit) }
    }

    /// How many more records a store may usefully read: room left, and one to tell whether
    /// another page follows.
    pub(crate) fn wanted(&self) -> usize {
        self.limit + 1 - self.records.len()
    }

    /// Takes the next record, or answers `false` when the page is full: that record is then the
    /// first of the next page (so there is never an empty last page). The first record always
    /// fits: one record is far below [`MAX_PAGE_BYTES`].
    pub(crate) fn offer(&mut self, record: StoredRecord) -> bool {
        // As the page shows it: the record's JSON and the comma before it.
        let size = serde_json::to_string(&record).map_or(usize::MAX, |json| json.len() + 1);
        let full = self.records.len() == self.limit || self.bytes.saturating_add(size) > MAX_PAGE_BYTES;
        if full && !self.records.is_empty() {
            return false;
        }
        self.bytes = self.bytes.saturating_add(size);
        self.records.push(record);
        true
    }

    /// The page; `more` when a record was refused or the store knows another follows.
    pub(crate) fn finish(self, more: bool) -> Page<StoredRecord> {
        let next_cursor =
            if more { self.records.last().map(|last| Cursor::after(&last.sequence).encode()) } else { None };
        Page { items: self.records, next_cursor }
    }
}
