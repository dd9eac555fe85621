//! Cursor pagination for every list the API returns: a `limit` and an opaque `cursor` in; the
//! page's items and the cursor of the next page out. A cursor names the last item a page showed,
//! so items added or removed meanwhile never make a page repeat or skip what stayed.

use crate::domain::ValidationError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::Serialize;

/// Items per page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most items one page holds.
pub const MAX_LIMIT: u32 = 200;
/// Longest cursor accepted (a cursor is an encoded position: a time and an id).
const MAX_CURSOR_LEN: usize = 256;
/// Marks the cursor format, so a later format can tell old cursors apart.
const CURSOR_VERSION: &str = "v1.";

/// A position in a listing: the sort key of the last item shown. Opaque to clients (base64url).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

impl Cursor {
    /// The position just after the item whose sort key is `key`.
    pub fn after(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// Reads a cursor a client sent back.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let invalid = || ValidationError::new("cursor", "is not a cursor this API returned");
        if s.is_empty() || s.len() > MAX_CURSOR_LEN {
            return Err(invalid());
        }
        let bytes = B64URL.decode(s).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let key = text.strip_prefix(CURSOR_VERSION).ok_or_else(invalid)?;
        if key.is_empty() || key.chars().any(char::is_control) {
            return Err(invalid());
        }
        Ok(Self(key.to_owned()))
    }

    /// The text handed to clients.
    pub fn encode(&self) -> String {
        B64URL.encode(format!("{CURSOR_VERSION}{}", self.0))
    }

    /// The sort key of the last item shown.
    pub fn key(&self) -> &str {
        &self.0
    }
}

/// Which page a client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// At most this many items (1 to [`MAX_LIMIT`]).
    pub limit: u32,
    /// Start after this position; `None` is the first page.
    pub after: Option<Cursor>,
}

impl PageRequest {
    /// Checks a limit and cursor from the outside (`None` limit: [`DEFAULT_LIMIT`]).
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ValidationError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ValidationError::new("limit", format!("must be 1 to {MAX_LIMIT}")));
        }
        Ok(Self { limit, after: cursor.map(Cursor::parse).transpose()? })
    }

    /// The first `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { limit, after: None }
    }
}

/// One page of a listing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from items fetched after the request's cursor, at most `limit + 1` of them: the
    /// extra one only tells that a next page exists.
    pub fn from_fetched(mut items: Vec<T>, request: &PageRequest, key: impl Fn(&T) -> String) -> Self {
        let limit = request.limit as usize;
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more { items.last().map(|last| Cursor::after(key(last)).encode()) } else { None };
        Self { items, next_cursor }
    }

    /// A page of a whole listing held in memory, sorted ascending by `key` (unique per item).
    /// For short listings: a tenant's channels and users, the tenants of the platform.
    pub fn of_sorted(items: Vec<T>, request: &PageRequest, key: impl Fn(&T) -> String) -> Self {
        let rest: Vec<T> = match &request.after {
            Some(after) => items.into_iter().filter(|item| key(item).as_str() > after.key()).collect(),
            None => items,
        };
        let fetched = rest.into_iter().take(request.limit as usize + 1).collect();
        Self::from_fetched(fetched, request, key)
    }

    /// The same page with each item turned into its view.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

/// The sort key of an item listed by a time then its id: fixed-width milliseconds, so text order
/// is time order.
pub fn time_key(at: time::OffsetDateTime, id: &str) -> String {
    format!("{:015}:{id}", crate::domain::inbound::to_ms(at).max(0))
}

impl Cursor {
    /// The (time, id) a [`time_key`] cursor names, for a store query; `None` if the cursor is not
    /// one (a cursor of another listing).
    pub fn time_position<T>(
        &self,
        parse: fn(&str) -> Result<T, ValidationError>,
    ) -> Result<(time::OffsetDateTime, T), ValidationError> {
        let invalid = || ValidationError::new("cursor", "does not belong to this listing");
        let (ms, id) = self.0.split_once(':').ok_or_else(invalid)?;
        let ms: i64 = ms.parse().map_err(|_| invalid())?;
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(|_| invalid())?;
        Ok((at, parse(id).map_err(|_| invalid())?))
    }

    /// The (key, id) of a cursor whose key is `{key}|{id}`.
    pub fn keyed_position<T>(
        &self,
        parse: fn(&str) -> Result<T, ValidationError>,
    ) -> Result<(String, T), ValidationError> {
        let invalid = || ValidationError::new("cursor", "does not belong to this listing");
        let (key, id) = self.0.rsplit_once('|').ok_or_else(invalid)?;
        Ok((key.to_owned(), parse(id).map_err(|_| invalid())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_we_did_not_issue() {
        let cursor = Cursor::after("000001700000000:cnv_1");
        assert_eq!(Cursor::parse(&cursor.encode()).unwrap(), cursor);
        for bad in ["", "not base64!", &B64URL.encode("v0.x"), &B64URL.encode("v1."), &"A".repeat(300)] {
            assert!(Cursor::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paging_through_a_listing_shows_each_item_once() {
        let items: Vec<u32> = (1..=7).collect();
        let key = |n: &u32| format!("{n:03}");
        let mut request = PageRequest::parse(Some(3), None).unwrap();
        let mut seen = Vec::new();
        loop {
            let page = Page::of_sorted(items.clone(), &request, key);
            seen.extend(page.items.iter().copied());
            match page.next_cursor {
                Some(cursor) => request = PageRequest::parse(Some(3), Some(&cursor)).unwrap(),
                None => break,
            }
        }
        assert_eq!(seen, items);
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(MAX_LIMIT + 1), None).is_err());
    }

    #[test]
    fn an_exactly_full_last_page_has_no_next_cursor() {
        let page = Page::of_sorted(vec![1, 2, 3], &PageRequest::first(3), |n: &i32| n.to_string());
        assert_eq!((page.items.len(), page.next_cursor), (3, None));
    }
}
