//! Filters evaluated in memory — the Midjourney [`TaskFilter`] on a [`TaskRecord`], and the
//! leaf types every log's filter is built from — with exactly the meaning of the
//! SQL condition (`filter_sql`): a NULL column reads as the `0` or `""` the record holds,
//! strings compare byte for byte, text patterns fold case through [`fold`], an empty
//! sub-filter matches everything and `in: []` matches nothing. Live subscriptions use it to
//! decide which changed rows a subscriber gets; a generated test holds it equal to SQL.

use crate::service::filter::{NumFilter, StringFilter, TaskFilter, TextFilter};
use crate::service::fold;
use crate::service::record::TaskRecord;

impl TaskFilter {
    /// Whether this node's own leaves hold for `task`.
    pub(crate) fn leaves_hold(&self, task: &TaskRecord) -> bool {
        let nums = [
            (&self.id, task.id),
            (&self.user_id, task.user_id),
            (&self.channel_id, task.channel_id),
            (&self.submit_time, task.submit_time),
            (&self.start_time, task.start_time),
            (&self.finish_time, task.finish_time),
            (&self.quota, task.quota),
        ];
        let strings = [
            (&self.mj_id, task.mj_id.as_str()),
            (&self.action, task.action.as_str()),
            (&self.status, task.status.as_str()),
        ];
        let texts = [
            (&self.prompt, task.prompt.as_str()),
            (&self.fail_reason, task.fail_reason.as_str()),
        ];
        nums.iter()
            .all(|(f, x)| f.as_ref().is_none_or(|f| f.holds(*x)))
            && strings
                .iter()
                .all(|(f, x)| f.as_ref().is_none_or(|f| f.holds(x)))
            && texts
                .iter()
                .all(|(f, x)| f.as_ref().is_none_or(|f| f.holds(x)))
            && self.finished.is_none_or(|v| task.finished() == v)
            && self
                .has_image
                .is_none_or(|v| task.image_url.is_empty() != v)
    }
}

impl NumFilter {
    /// Whether `x` (a NULL read as 0) passes every comparison.
    pub(crate) fn holds(&self, x: i64) -> bool {
        self.eq.is_none_or(|v| x == v)
            && self.ne.is_none_or(|v| x != v)
            && self.gt.is_none_or(|v| x > v)
            && self.gte.is_none_or(|v| x >= v)
            && self.lt.is_none_or(|v| x < v)
            && self.lte.is_none_or(|v| x <= v)
            && self.in_list.as_ref().is_none_or(|l| l.contains(&x))
            && self.not_in.as_ref().is_none_or(|l| !l.contains(&x))
    }
}

impl StringFilter {
    /// Whether `x` (a NULL read as "") passes every comparison, byte for byte.
    pub(crate) fn holds(&self, x: &str) -> bool {
        let listed = |l: &Vec<String>| l.iter().any(|v| v == x);
        self.eq.as_ref().is_none_or(|v| x == v)
            && self.ne.as_ref().is_none_or(|v| x != v)
            && self.in_list.as_ref().is_none_or(listed)
            && self.not_in.as_ref().is_none_or(|l| !listed(l))
    }
}

impl TextFilter {
    /// Whether `x` passes every pattern test.
    pub(crate) fn holds(&self, x: &str) -> bool {
        self.contains
            .as_ref()
            .is_none_or(|p| fold::matches(x, p, false))
            && self
                .starts_with
                .as_ref()
                .is_none_or(|p| fold::matches(x, p, true))
            && self.is_empty.is_none_or(|v| x.is_empty() == v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::log::LogFilter;

    fn task() -> TaskRecord {
        TaskRecord {
            id: 7,
            user_id: 2,
            code: 1,
            mj_id: "abc".into(),
            action: "IMAGINE".into(),
            prompt: "Großer ÄRGER".into(),
            prompt_en: String::new(),
            description: String::new(),
            state: String::new(),
            status: "IN_PROGRESS".into(),
            progress: "45%".into(),
            image_url: String::new(),
            video_url: String::new(),
            video_urls: String::new(),
            buttons: String::new(),
            properties: String::new(),
            submit_time: 0,
            start_time: 0,
            finish_time: 0,
            fail_reason: String::new(),
            channel_id: 0,
            quota: 0,
        }
    }

    #[test]
    fn an_empty_filter_matches_and_an_empty_in_list_does_not() {
        let t = task();
        assert!(TaskFilter::default().matches(&t));
        let none = TaskFilter {
            quota: Some(NumFilter {
                in_list: Some(vec![]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(!none.matches(&t));
        let not_empty = TaskFilter {
            not: Some(Box::default()),
            ..Default::default()
        };
        assert!(!not_empty.matches(&t));
    }

    #[test]
    fn unset_values_read_as_zero_and_empty() {
        let t = task();
        let f = TaskFilter {
            quota: Some(NumFilter {
                lte: Some(0),
                ..Default::default()
            }),
            fail_reason: Some(TextFilter {
                is_empty: Some(true),
                ..Default::default()
            }),
            prompt: Some(TextFilter {
                contains: Some("ärger".into()),
                ..Default::default()
            }),
            finished: Some(false),
            has_image: Some(false),
            ..Default::default()
        };
        assert!(f.matches(&t));
    }
}
