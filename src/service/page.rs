//! Page requests (offset pages and keyset cursors) and the page a query returns.

use crate::error::Error;
use crate::service::log::Log;
use crate::service::order::KeyOrder;

/// The Midjourney legacy routes' and GraphQL's default page size.
pub const DEFAULT_PAGE_SIZE: u64 = 20;
/// The task log's legacy routes' default page size (new-api's `ItemsPerPage`).
pub const TASK_LOG_LEGACY_PAGE_SIZE: u64 = 10;
/// The largest page.
pub const MAX_PAGE_SIZE: u64 = 100;
/// Deepest offset window (`page × pageSize`) GraphQL allows; deeper browsing uses cursors.
pub const MAX_OFFSET_WINDOW: u64 = 10_000;
/// Longest cursor string accepted.
pub const MAX_CURSOR_LEN: usize = 1024;

/// A numbered page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetPage {
    /// 1-based.
    pub page: u64,
    /// 1 to [`MAX_PAGE_SIZE`].
    pub page_size: u64,
}

impl OffsetPage {
    /// The legacy routes' rules: a missing or non-positive page is 1; a missing or
    /// non-positive size is the default; a size above the maximum is clamped.
    ///
    /// ```
    /// use mj_tasks::service::OffsetPage;
    /// assert_eq!(OffsetPage::legacy(None, None), OffsetPage { page: 1, page_size: 20 });
    /// assert_eq!(OffsetPage::legacy(Some(-2), Some(500)), OffsetPage { page: 1, page_size: 100 });
    /// // A huge page does not overflow the offset.
    /// assert_eq!(OffsetPage::legacy(Some(i64::MAX), Some(100)).offset(), i64::MAX as u64);
    /// ```
    pub fn legacy(page: Option<i64>, page_size: Option<i64>) -> OffsetPage {
        OffsetPage::legacy_sized(page, page_size, DEFAULT_PAGE_SIZE)
    }

    /// [`OffsetPage::legacy`] with another default size (the task log's routes use
    /// [`TASK_LOG_LEGACY_PAGE_SIZE`]).
    pub fn legacy_sized(page: Option<i64>, page_size: Option<i64>, default: u64) -> OffsetPage {
        let page = page.filter(|p| *p >= 1).map_or(1, |p| p as u64);
        let page_size = match page_size {
            Some(s) if s >= 1 => (s as u64).min(MAX_PAGE_SIZE),
            _ => default,
        };
        OffsetPage { page, page_size }
    }

    /// GraphQL's rules: errors instead of silent changes, and a bounded window.
    pub fn strict(page: i64, page_size: i64) -> Result<OffsetPage, Error> {
        let page_size = check_size(page_size, "pageSize")?;
        if page < 1 {
            return Err(Error::BadFilter("page starts at 1".into()));
        }
        let page = page as u64;
        if page.saturating_mul(page_size) > MAX_OFFSET_WINDOW {
            return Err(Error::OffsetTooDeep);
        }
        Ok(OffsetPage { page, page_size })
    }

    /// Rows skipped; saturates (and stays within what every backend accepts) for huge pages.
    pub fn offset(&self) -> u64 {
        (self.page - 1)
            .saturating_mul(self.page_size)
            .min(i64::MAX as u64)
    }
}

/// Checks a requested page size: 1 to [`MAX_PAGE_SIZE`].
pub fn check_size(size: i64, name: &str) -> Result<u64, Error> {
    if size < 1 {
        return Err(Error::BadFilter(format!("{name} must be at least 1")));
    }
    if size as u64 > MAX_PAGE_SIZE {
        return Err(Error::PageTooLarge);
    }
    Ok(size as u64)
}

/// A keyset page: `first` rows after `after`, or `last` rows before `before`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CursorPage {
    pub first: Option<i64>,
    pub after: Option<String>,
    pub last: Option<i64>,
    pub before: Option<String>,
}

/// How to page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageRequest {
    Offset(OffsetPage),
    Cursor(CursorPage),
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest::Offset(OffsetPage {
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
        })
    }
}

/// One page of a log's rows.
pub struct Page<L: Log> {
    pub rows: Vec<L::Record>,
    /// The order and filter the rows' cursors are made for (cursors are only encoded when
    /// asked for: the legacy routes never need them).
    pub(crate) order: Vec<KeyOrder<L::Field>>,
    pub(crate) fingerprint: String,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    /// The page number in offset mode.
    pub page: Option<u64>,
    pub page_size: u64,
}

/// One page of Midjourney tasks.
pub type TaskPage = Page<crate::service::Midjourneys>;

impl<L: Log> Clone for Page<L> {
    fn clone(&self) -> Self {
        Page {
            rows: self.rows.clone(),
            order: self.order.clone(),
            fingerprint: self.fingerprint.clone(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
            page: self.page,
            page_size: self.page_size,
        }
    }
}

impl<L: Log> std::fmt::Debug for Page<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("log", &L::TABLE)
            .field("rows", &self.rows)
            .field("has_next_page", &self.has_next_page)
            .field("has_previous_page", &self.has_previous_page)
            .field("page", &self.page)
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl<L: Log> Page<L> {
    /// The opaque cursor of row `i`.
    pub fn cursor(&self, i: usize) -> Option<String> {
        self.rows
            .get(i)
            .map(|r| crate::service::cursor::encode::<L::Field>(r, &self.order, &self.fingerprint))
    }

    /// The cursor of every row, in order.
    pub fn cursors(&self) -> Vec<String> {
        (0..self.rows.len())
            .filter_map(|i| self.cursor(i))
            .collect()
    }
}
