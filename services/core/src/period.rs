//! Periods and buckets in Vietnam local time (UTC+7, no daylight saving).
//!
//! Counters are stored per bucket: a calendar day, month, quarter or year. A period is a
//! range of days; it is read from the fewest buckets that cover it exactly ([`Period::cover`]).

use std::fmt;

use time::{Date, Month, OffsetDateTime, UtcOffset};

/// Vietnam's offset from UTC, all year round.
pub const VIETNAM: UtcOffset = match UtcOffset::from_hms(7, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("UTC+7 is a valid offset"),
};

/// The Vietnam local day of an instant.
pub fn vietnam_day(at: OffsetDateTime) -> Date {
    at.to_offset(VIETNAM).date()
}

/// One stored counter bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    /// One calendar day.
    Day(Date),
    /// One calendar month (year, month 1-12).
    Month(i32, u8),
    /// One quarter (year, quarter 1-4).
    Quarter(i32, u8),
    /// One calendar year.
    Year(i32),
}

impl Bucket {
    /// The four buckets a day counts in: its day, month, quarter and year.
    pub fn containing(day: Date) -> [Bucket; 4] {
        let month = u8::from(day.month());
        [
            Bucket::Day(day),
            Bucket::Month(day.year(), month),
            Bucket::Quarter(day.year(), quarter_of(month)),
            Bucket::Year(day.year()),
        ]
    }

    /// Whether the bucket is a day or a month (not a quarter or a year).
    pub fn is_month_or_shorter(self) -> bool {
        matches!(self, Bucket::Day(_) | Bucket::Month(..))
    }

    /// The bucket as people write it: `2026-08-15`, `2026-08`, `2026-Q3`, `2026`.
    pub fn label(self) -> String {
        match self {
            Bucket::Day(d) => d.to_string(),
            Bucket::Month(y, m) => format!("{y:04}-{m:02}"),
            Bucket::Quarter(y, q) => format!("{y:04}-Q{q}"),
            Bucket::Year(y) => format!("{y:04}"),
        }
    }

    /// The buckets one level down that make this one up: a month's days, a quarter's
    /// months, a year's quarters; none for a day.
    pub fn parts(self) -> Vec<Bucket> {
        match self {
            Bucket::Day(_) => Vec::new(),
            Bucket::Month(..) => {
                let (first, last) = (self.first_day(), self.last_day());
                std::iter::successors(Some(first), |d| d.next_day().filter(|d| *d <= last))
                    .map(Bucket::Day)
                    .collect()
            }
            Bucket::Quarter(y, q) => (1..=3).map(|m| Bucket::Month(y, (q - 1) * 3 + m)).collect(),
            Bucket::Year(y) => (1..=4).map(|q| Bucket::Quarter(y, q)).collect(),
        }
    }

    /// The bucket of the same kind just before this one.
    pub fn previous(self) -> Bucket {
        match self {
            Bucket::Day(d) => Bucket::Day(d.previous_day().unwrap_or(d)),
            Bucket::Month(y, 1) => Bucket::Month(y - 1, 12),
            Bucket::Month(y, m) => Bucket::Month(y, m - 1),
            Bucket::Quarter(y, 1) => Bucket::Quarter(y - 1, 4),
            Bucket::Quarter(y, q) => Bucket::Quarter(y, q - 1),
            Bucket::Year(y) => Bucket::Year(y - 1),
        }
    }

    /// The first day of the bucket.
    pub fn first_day(self) -> Date {
        match self {
            Bucket::Day(d) => d,
            Bucket::Month(y, m) => first_of_month(y, m),
            Bucket::Quarter(y, q) => first_of_month(y, (q - 1) * 3 + 1),
            Bucket::Year(y) => first_of_month(y, 1),
        }
    }

    /// The last day of the bucket.
    pub fn last_day(self) -> Date {
        match self {
            Bucket::Day(d) => d,
            Bucket::Month(y, m) => last_of_month(y, m),
            Bucket::Quarter(y, q) => last_of_month(y, q * 3),
            Bucket::Year(y) => last_of_month(y, 12),
        }
    }
}

/// Buckets whose sum, minus the sum of other buckets, gives a period's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadPlan {
    /// Buckets to add.
    pub add: Vec<Bucket>,
    /// Buckets to subtract (each lies inside an added bucket).
    pub subtract: Vec<Bucket>,
}

impl ReadPlan {
    /// How many buckets it reads.
    pub fn len(&self) -> usize {
        self.add.len() + self.subtract.len()
    }

    /// Whether it reads nothing.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.subtract.is_empty()
    }
}

/// A compact, sortable key: `d20260815`, `m202608`, `q20263`, `y2026`.
impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bucket::Day(d) => write!(
                f,
                "d{:04}{:02}{:02}",
                d.year(),
                u8::from(d.month()),
                d.day()
            ),
            Bucket::Month(y, m) => write!(f, "m{y:04}{m:02}"),
            Bucket::Quarter(y, q) => write!(f, "q{y:04}{q}"),
            Bucket::Year(y) => write!(f, "y{y:04}"),
        }
    }
}

impl Bucket {
    /// Appends the bucket's text, as `Display` writes it (`d20260815`, `m202608`, `q20263`,
    /// `y2026`), without the formatting machinery: stores name thousands of keys a batch by
    /// it.
    pub fn push_to(self, out: &mut String) {
        // The tag, the year in 4 digits, then the month and day (4 digits), the month (2)
        // or the quarter (1): a day's calendar date computed once, not per part.
        let (tag, year, rest, width) = match self {
            Bucket::Day(d) => {
                let (year, month, day) = d.to_calendar_date();
                (
                    b'd',
                    year,
                    u32::from(u8::from(month)) * 100 + u32::from(day),
                    4,
                )
            }
            Bucket::Month(y, m) => (b'm', y, u32::from(m), 2),
            Bucket::Quarter(y, q) => (b'q', y, u32::from(q), 1),
            Bucket::Year(y) => (b'y', y, 0, 0),
        };
        // A year before 0 or after 9999 (which no accepted event has), or a part too wide, is
        // written as `Display` pads it.
        let year = match u32::try_from(year) {
            Ok(year @ 0..10_000) if rest < 10u32.pow(width) => year,
            _ => {
                use std::fmt::Write;
                let _ = write!(out, "{self}");
                return;
            }
        };
        let mut text = [tag; 9];
        let end = 5 + width as usize;
        for (at, mut n, digits) in [(5, year, 4), (end, rest, width as usize)] {
            for slot in text[at - digits..at].iter_mut().rev() {
                *slot = b'0' + (n % 10) as u8;
                n /= 10;
            }
        }
        // ASCII digits after an ASCII tag.
        out.push_str(std::str::from_utf8(&text[..end]).unwrap_or_default());
    }
}

/// The position of a bucket's kind in [`Bucket::containing`]'s answer.
fn bucket_rank(bucket: Bucket) -> usize {
    match bucket {
        Bucket::Day(_) => 0,
        Bucket::Month(..) => 1,
        Bucket::Quarter(..) => 2,
        Bucket::Year(_) => 3,
    }
}

fn quarter_of(month: u8) -> u8 {
    (month - 1) / 3 + 1
}

fn month_of(m: u8) -> Month {
    Month::try_from(m).unwrap_or(Month::January)
}

fn first_of_month(year: i32, month: u8) -> Date {
    Date::from_calendar_date(year, month_of(month), 1).unwrap_or(Date::MIN)
}

fn last_of_month(year: i32, month: u8) -> Date {
    let m = month_of(month);
    Date::from_calendar_date(year, m, m.length(year)).unwrap_or(Date::MAX)
}

/// Why a period expression is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error(
        "{0:?} is not a period; write a day 2026-08-15, an ISO week 2026-W49, a month 2026-08, \
         a quarter 2026-Q3, a year 2026, a range 2026-01-01..2026-08-31, or ytd"
    )]
    Syntax(String),
    #[error("{0:?} is not a calendar date")]
    BadDate(String),
    #[error("the range starts on {first} after it ends on {last}")]
    Reversed { first: Date, last: Date },
    #[error("years from {MIN_YEAR} to {MAX_YEAR} only")]
    YearOutOfRange,
}

/// The earliest year a period may name.
pub const MIN_YEAR: i32 = 2000;
/// The latest year a period may name.
pub const MAX_YEAR: i32 = 2100;

/// A range of Vietnam local days, both ends included, with the expression it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    expression: String,
    first: Date,
    last: Date,
    /// For an ISO week (`2026-W49`, Monday to Sunday): its ISO year and number, which its
    /// previous week and the same week of last year follow.
    week: Option<(i32, u8)>,
}

impl Period {
    /// Parses `2026-08-15`, `2026-W49` (an ISO week, Monday to Sunday: `2026-W01` begins on
    /// 29 December 2025), `2026-08`, `2026-Q3`, `2026`, `2026-01-01..2026-08-31` or `ytd`
    /// (1 January of `today`'s year to `today`).
    pub fn parse(raw: &str, today: Date) -> Result<Self, PeriodError> {
        let expr = raw.trim();
        if let Some(week) = parse_week(expr)? {
            return Ok(week);
        }
        let (first, last) = if expr.eq_ignore_ascii_case("ytd") {
            (first_of_month(today.year(), 1), today)
        } else if let Some((a, b)) = expr.split_once("..") {
            let (first, last) = (parse_day(a)?, parse_day(b)?);
            if first > last {
                return Err(PeriodError::Reversed { first, last });
            }
            (first, last)
        } else {
            let bucket = parse_bucket(expr)?;
            (bucket.first_day(), bucket.last_day())
        };
        for year in [first.year(), last.year()] {
            if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
                return Err(PeriodError::YearOutOfRange);
            }
        }
        Ok(Self {
            expression: expr.to_owned(),
            first,
            last,
            week: None,
        })
    }

    /// ISO week `week` of ISO year `year` (Monday to Sunday), if it has one: week 53 exists
    /// only in long years.
    pub fn of_week(year: i32, week: u8) -> Option<Self> {
        let first = Date::from_iso_week_date(year, week, time::Weekday::Monday).ok()?;
        let last = Date::from_iso_week_date(year, week, time::Weekday::Sunday).ok()?;
        Some(Self {
            expression: format!("{year:04}-W{week:02}"),
            first,
            last,
            week: Some((year, week)),
        })
    }

    /// The ISO week containing `day`.
    pub fn week_of(day: Date) -> Self {
        let (year, week, _) = day.to_iso_week_date();
        Self::of_week(year, week).unwrap_or_else(|| Period::from_days(day, day))
    }

    /// The period covering exactly one bucket.
    pub fn of_bucket(bucket: Bucket) -> Self {
        Self {
            expression: bucket.label(),
            first: bucket.first_day(),
            last: bucket.last_day(),
            week: None,
        }
    }

    /// The days `first..=last`, written as a range.
    pub fn from_days(first: Date, last: Date) -> Self {
        Self {
            expression: format!("{first}..{last}"),
            first,
            last,
            week: None,
        }
    }

    /// The same days one year earlier ("the same period of last year"); 29 February
    /// becomes 28 February.
    pub fn same_period_last_year(&self) -> Period {
        // An ISO week: the week of the same number a year earlier (week 53 of a long year:
        // the last week of the year before, 52).
        if let Some((year, week)) = self.week {
            return Period::of_week(year - 1, week)
                .or_else(|| Period::of_week(year - 1, week - 1))
                .unwrap_or_else(|| Period::week_of(self.first - time::Duration::days(364)));
        }
        let shift = |d: Date| {
            Date::from_calendar_date(d.year() - 1, d.month(), d.day())
                .or_else(|_| Date::from_calendar_date(d.year() - 1, d.month(), d.day() - 1))
                .unwrap_or(d)
        };
        let (first, last) = (shift(self.first), shift(self.last));
        match self.as_bucket() {
            None => Period::from_days(first, last),
            Some(bucket) => Period::of_bucket(Bucket::containing(first)[bucket_rank(bucket)]),
        }
    }

    /// The period just before, of the same kind: the previous day, ISO week, month, quarter
    /// or year for a calendar period; the same number of days just before for any other
    /// range.
    pub fn previous(&self) -> Period {
        if self.week.is_some() {
            return Period::week_of(self.first - time::Duration::days(7));
        }
        match self.as_bucket() {
            Some(bucket) => Period::of_bucket(bucket.previous()),
            None => {
                let days = self.last - self.first + time::Duration::days(1);
                Period::from_days(self.first - days, self.first - time::Duration::days(1))
            }
        }
    }

    /// The cheapest exact way to read the period's summable counters: buckets to add and
    /// buckets to subtract, knowing that no day after `last_possible` holds data (ingest
    /// refuses events more than a few minutes ahead, so that day is tomorrow).
    ///
    /// `2026-01-01..2026-11-23` read on 23 November is `y2026 − d20261124` (2 reads) rather
    /// than its 27-bucket cover; the same days of 2025 are `y2025 − (d20251124..d20251130,
    /// m202512)`. Distinct counts cannot be subtracted: they use [`Period::union_cover`].
    pub fn read_plan(&self, last_possible: Date) -> ReadPlan {
        let last = self.last.min(last_possible);
        let mut plan = ReadPlan::default();
        if last < self.first {
            return plan;
        }
        // Each calendar year of the period separately: the direct cover, or an enclosing
        // year, quarter or month minus what lies outside the period (up to last_possible).
        let mut start = self.first;
        loop {
            let year_end = Bucket::Year(start.year()).last_day();
            let end = last.min(year_end);
            // Days after last_possible are empty, so the cover may stop at `end` or run on to
            // the period's own end, whichever reads fewer buckets.
            let direct = Period::from_days(start, end).cover();
            let untruncated = Period::from_days(start, self.last.min(year_end)).cover();
            let direct = if untruncated.len() < direct.len() {
                untruncated
            } else {
                direct
            };
            let mut best = ReadPlan {
                add: direct,
                subtract: Vec::new(),
            };
            for enclosing in Bucket::containing(start).into_iter().skip(1) {
                if enclosing.last_day() < end {
                    continue;
                }
                let mut candidate = ReadPlan {
                    add: vec![enclosing],
                    subtract: Vec::new(),
                };
                if enclosing.first_day() < start {
                    let before = start.previous_day().unwrap_or(start);
                    candidate
                        .subtract
                        .extend(Period::from_days(enclosing.first_day(), before).cover());
                }
                let after_end = enclosing.last_day().min(last_possible);
                if let Some(after) = end.next_day().filter(|d| *d <= after_end) {
                    candidate
                        .subtract
                        .extend(Period::from_days(after, after_end).cover());
                }
                if candidate.len() < best.len() {
                    best = candidate;
                }
            }
            plan.add.extend(best.add);
            plan.subtract.extend(best.subtract);
            match end.next_day() {
                Some(next) if end < last => start = next,
                _ => return plan,
            }
        }
    }

    /// The fewest buckets whose union holds exactly the period's data, knowing that no day
    /// after `last_possible` holds any: for distinct counts, which cannot subtract. The
    /// exact [`Period::cover`], except that a period reaching `last_possible` may be read
    /// with buckets that run on past it to the end of its month, quarter or year: year to
    /// date on 3 December is `y2026` (one set) rather than `q20261`, `q20262`, `q20263`,
    /// `m202610`, `m202611` and three days.
    pub fn union_cover(&self, last_possible: Date) -> Vec<Bucket> {
        if self.last < last_possible {
            return self.cover();
        }
        if last_possible < self.first {
            return Vec::new();
        }
        Bucket::containing(last_possible)
            .into_iter()
            .map(|bucket| Period::from_days(self.first, bucket.last_day()).cover())
            .min_by_key(Vec::len)
            .unwrap_or_default()
    }

    /// The one bucket whose days are exactly the period's, if there is one.
    pub fn as_bucket(&self) -> Option<Bucket> {
        match self.cover().as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    }

    /// The expression the period was written as.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first day.
    pub fn first_day(&self) -> Date {
        self.first
    }

    /// The last day.
    pub fn last_day(&self) -> Date {
        self.last
    }

    /// Whether the period includes `day`.
    pub fn contains(&self, day: Date) -> bool {
        (self.first..=self.last).contains(&day)
    }

    /// The fewest stored buckets whose days are exactly the period's days, in order.
    ///
    /// Buckets nest (a year is four quarters, a quarter three months, a month its days), so
    /// taking at each step the largest bucket that starts there and ends within the period
    /// gives the smallest cover.
    pub fn cover(&self) -> Vec<Bucket> {
        let mut buckets = Vec::new();
        let mut day = self.first;
        loop {
            let [d, m, q, y] = Bucket::containing(day);
            let bucket = [y, q, m]
                .into_iter()
                .find(|b| b.first_day() == day && b.last_day() <= self.last)
                .unwrap_or(d);
            buckets.push(bucket);
            match bucket.last_day().next_day() {
                Some(next) if next <= self.last => day = next,
                _ => return buckets,
            }
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

fn parse_number<T: std::str::FromStr>(part: &str, expr: &str) -> Result<T, PeriodError> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PeriodError::Syntax(expr.to_owned()));
    }
    part.parse()
        .map_err(|_| PeriodError::Syntax(expr.to_owned()))
}

fn parse_year(part: &str, expr: &str) -> Result<i32, PeriodError> {
    if part.len() != 4 {
        return Err(PeriodError::Syntax(expr.to_owned()));
    }
    parse_number(part, expr)
}

/// Parses a `YYYY-MM-DD` calendar date.
pub fn parse_day(raw: &str) -> Result<Date, PeriodError> {
    let parts: Vec<&str> = raw.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(PeriodError::Syntax(raw.to_owned()));
    };
    if m.len() != 2 || d.len() != 2 {
        return Err(PeriodError::Syntax(raw.to_owned()));
    }
    let year = parse_year(y, raw)?;
    let month: u8 = parse_number(m, raw)?;
    let day: u8 = parse_number(d, raw)?;
    let month = Month::try_from(month).map_err(|_| PeriodError::BadDate(raw.to_owned()))?;
    Date::from_calendar_date(year, month, day).map_err(|_| PeriodError::BadDate(raw.to_owned()))
}

/// `2026-W49` (or `2026-w49`): ISO week 49 of ISO year 2026; `None` for any other form.
fn parse_week(expr: &str) -> Result<Option<Period>, PeriodError> {
    let Some((y, w)) = expr.split_once('-') else {
        return Ok(None);
    };
    let Some(number) = w.strip_prefix(['W', 'w']) else {
        return Ok(None);
    };
    if number.len() != 2 {
        return Err(PeriodError::Syntax(expr.to_owned()));
    }
    let (year, week) = (parse_year(y, expr)?, parse_number::<u8>(number, expr)?);
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return Err(PeriodError::YearOutOfRange);
    }
    Period::of_week(year, week)
        .map(Some)
        .ok_or_else(|| PeriodError::BadDate(expr.to_owned()))
}

fn parse_bucket(expr: &str) -> Result<Bucket, PeriodError> {
    let parts: Vec<&str> = expr.split('-').collect();
    match parts.as_slice() {
        [y] => Ok(Bucket::Year(parse_year(y, expr)?)),
        [y, q] if q.len() == 2 && (q.starts_with('Q') || q.starts_with('q')) => {
            let quarter: u8 = parse_number(&q[1..], expr)?;
            if !(1..=4).contains(&quarter) {
                return Err(PeriodError::BadDate(expr.to_owned()));
            }
            Ok(Bucket::Quarter(parse_year(y, expr)?, quarter))
        }
        [y, m] if m.len() == 2 => {
            let month: u8 = parse_number(m, expr)?;
            if !(1..=12).contains(&month) {
                return Err(PeriodError::BadDate(expr.to_owned()));
            }
            Ok(Bucket::Month(parse_year(y, expr)?, month))
        }
        [_, _, _] => Ok(Bucket::Day(parse_day(expr)?)),
        _ => Err(PeriodError::Syntax(expr.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn a_bucket_pushes_the_text_it_displays() {
        let mut buckets = vec![
            Bucket::Year(0),
            Bucket::Year(9999),
            Bucket::Year(-1),
            Bucket::Year(10_000),
        ];
        for year in [0, 7, 999, 1970, 2026, 9999] {
            buckets.extend([
                Bucket::Year(year),
                Bucket::Quarter(year, 4),
                Bucket::Month(year, 12),
            ]);
            for day in [1, 40, 200, 366] {
                if let Ok(date) = Date::from_ordinal_date(year, day) {
                    buckets.push(Bucket::Day(date));
                }
            }
        }
        buckets.extend([
            Bucket::Month(2026, 100),
            Bucket::Quarter(2026, 12),
            Bucket::Month(-5, 1),
        ]);
        for bucket in buckets {
            let mut pushed = String::from("key:");
            bucket.push_to(&mut pushed);
            assert_eq!(pushed, format!("key:{bucket}"), "{bucket:?}");
        }
    }

    const TODAY: Date = date!(2026 - 08 - 20);

    fn parse(s: &str) -> Period {
        Period::parse(s, TODAY).expect("valid period")
    }

    #[test]
    fn every_written_form_parses_to_its_days() {
        let cases = [
            ("2026-08-15", date!(2026 - 08 - 15), date!(2026 - 08 - 15)),
            ("2026-08", date!(2026 - 08 - 01), date!(2026 - 08 - 31)),
            ("2024-02", date!(2024 - 02 - 01), date!(2024 - 02 - 29)),
            ("2026-Q3", date!(2026 - 07 - 01), date!(2026 - 09 - 30)),
            ("2026-q1", date!(2026 - 01 - 01), date!(2026 - 03 - 31)),
            ("2026", date!(2026 - 01 - 01), date!(2026 - 12 - 31)),
            (
                "2022-01-01..2022-08-31",
                date!(2022 - 01 - 01),
                date!(2022 - 08 - 31),
            ),
            ("ytd", date!(2026 - 01 - 01), TODAY),
        ];
        for (expr, first, last) in cases {
            let p = parse(expr);
            assert_eq!((p.first_day(), p.last_day()), (first, last), "{expr}");
        }
    }

    #[test]
    fn each_bucket_is_made_of_the_buckets_one_level_down() {
        for bucket in Bucket::containing(date!(2024 - 02 - 10)) {
            let parts = bucket.parts();
            if let Bucket::Day(_) = bucket {
                assert!(parts.is_empty());
                continue;
            }
            assert_eq!(
                parts.first().map(|b| b.first_day()),
                Some(bucket.first_day())
            );
            assert_eq!(parts.last().map(|b| b.last_day()), Some(bucket.last_day()));
            for pair in parts.windows(2) {
                assert_eq!(pair[0].last_day().next_day(), Some(pair[1].first_day()));
            }
        }
        assert_eq!(Bucket::Month(2024, 2).parts().len(), 29);
        assert_eq!(
            Bucket::Quarter(2026, 3).parts(),
            [
                Bucket::Month(2026, 7),
                Bucket::Month(2026, 8),
                Bucket::Month(2026, 9)
            ]
        );
    }

    #[test]
    fn bad_periods_say_why() {
        for bad in [
            "",
            "2026-13",
            "2026-Q5",
            "2026-02-30",
            "26-08",
            "2026-8",
            "week",
            "2026-08-1",
        ] {
            assert!(
                Period::parse(bad, TODAY).is_err(),
                "{bad:?} should not parse"
            );
        }
        assert_eq!(
            Period::parse("2026-02-01..2026-01-01", TODAY),
            Err(PeriodError::Reversed {
                first: date!(2026 - 02 - 01),
                last: date!(2026 - 01 - 01)
            })
        );
        assert_eq!(
            Period::parse("1999", TODAY),
            Err(PeriodError::YearOutOfRange)
        );
    }

    #[test]
    fn vietnam_day_is_utc_plus_seven() {
        assert_eq!(
            vietnam_day(datetime!(2026-08-14 16:59:59 UTC)),
            date!(2026 - 08 - 14)
        );
        assert_eq!(
            vietnam_day(datetime!(2026-08-14 17:00:00 UTC)),
            date!(2026 - 08 - 15)
        );
        assert_eq!(
            vietnam_day(datetime!(2025-12-31 17:00:00 UTC)),
            date!(2026 - 01 - 01)
        );
    }

    #[test]
    fn bucket_keys_are_compact() {
        let names: Vec<String> = Bucket::containing(date!(2026 - 08 - 05))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["d20260805", "m202608", "q20263", "y2026"]);
    }

    #[test]
    fn cover_uses_the_largest_buckets() {
        let names =
            |s: &str| -> Vec<String> { parse(s).cover().iter().map(ToString::to_string).collect() };
        assert_eq!(names("2026"), ["y2026"]);
        assert_eq!(names("2026-Q3"), ["q20263"]);
        assert_eq!(
            names("2022-01-01..2022-08-31"),
            ["q20221", "q20222", "m202207", "m202208"]
        );
        assert_eq!(
            names("2025-12-30..2027-02-02"),
            [
                "d20251230",
                "d20251231",
                "y2026",
                "m202701",
                "d20270201",
                "d20270202"
            ]
        );
        assert_eq!(
            names("ytd"),
            [
                "q20261",
                "q20262",
                "m202607",
                "d20260801",
                "d20260802",
                "d20260803",
                "d20260804",
                "d20260805",
                "d20260806",
                "d20260807",
                "d20260808",
                "d20260809",
                "d20260810",
                "d20260811",
                "d20260812",
                "d20260813",
                "d20260814",
                "d20260815",
                "d20260816",
                "d20260817",
                "d20260818",
                "d20260819",
                "d20260820"
            ]
        );
    }

    #[test]
    fn comparisons_shift_to_last_year_and_to_the_period_before() {
        let cases = [
            (
                "2022-01-01..2022-08-31",
                "2021-01-01..2021-08-31",
                "2021-05-03..2021-12-31",
            ),
            ("2026-08", "2025-08", "2026-07"),
            ("2026-01", "2025-01", "2025-12"),
            ("2026-Q1", "2025-Q1", "2025-Q4"),
            ("2026", "2025", "2025"),
            ("2026-03-01", "2025-03-01", "2026-02-28"),
            ("2024-02", "2023-02", "2024-01"),
            ("2024-02-29", "2023-02-28", "2024-02-28"),
            ("ytd", "2025-01-01..2025-08-20", "2025-05-14..2025-12-31"),
        ];
        for (expr, last_year, previous) in cases {
            let p = parse(expr);
            assert_eq!(p.same_period_last_year().expression(), last_year, "{expr}");
            assert_eq!(p.previous().expression(), previous, "{expr}");
        }
        let feb = parse("2024-02").same_period_last_year();
        assert_eq!(
            (feb.first_day(), feb.last_day()),
            (date!(2023 - 02 - 01), date!(2023 - 02 - 28))
        );
    }

    fn names(buckets: &[Bucket]) -> Vec<String> {
        buckets.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn reading_up_to_today_subtracts_what_cannot_be_read_directly() {
        let tomorrow = date!(2026 - 11 - 24);
        let plan = parse("2026-01-01..2026-11-23").read_plan(tomorrow);
        assert_eq!(
            (names(&plan.add), names(&plan.subtract)),
            (vec!["y2026".into()], vec!["d20261124".into()])
        );
        let last_year = parse("2025-01-01..2025-11-23").read_plan(tomorrow);
        assert_eq!(names(&last_year.add), ["y2025"]);
        assert_eq!(
            names(&last_year.subtract),
            [
                "d20251124",
                "d20251125",
                "d20251126",
                "d20251127",
                "d20251128",
                "d20251129",
                "d20251130",
                "m202512"
            ]
        );
        let plan = parse("2026-11").read_plan(tomorrow);
        assert_eq!(
            (names(&plan.add), plan.subtract.len()),
            (vec!["m202611".into()], 0)
        );
        let future = parse("2027").read_plan(tomorrow);
        assert!(future.is_empty(), "nothing can be stored after tomorrow");
        let early = parse("2026-03-01..2026-03-04").read_plan(tomorrow);
        assert_eq!(
            names(&early.add),
            ["d20260301", "d20260302", "d20260303", "d20260304"]
        );
    }

    #[test]
    fn a_union_reaching_today_reads_the_enclosing_buckets() {
        // Data can be dated at most today (3 December), except in the last minutes of the
        // day, when tomorrow's may already arrive.
        let (today, tomorrow) = (date!(2026 - 12 - 03), date!(2026 - 12 - 04));
        let union = |p: &str| names(&parse(p).union_cover(today));
        assert_eq!(union("2026-01-01..2026-12-03"), ["y2026"]);
        assert_eq!(
            names(&parse("2026-01-01..2026-12-03").union_cover(tomorrow)),
            names(&parse("2026-01-01..2026-12-03").cover()),
            "tomorrow may hold data: the exact cover"
        );
        assert_eq!(union("2026-12-01..2026-12-31"), ["m202612"]);
        assert_eq!(union("2026-10-01..2026-12-04"), ["q20264"]);
        assert_eq!(union("2026-09-30..2026-12-04"), ["d20260930", "q20264"]);
        assert_eq!(
            union("2025-01-01..2025-12-03"),
            names(&parse("2025-01-01..2025-12-03").cover()),
            "days after it may hold data: the exact cover"
        );
        assert_eq!(union("2026-12-01..2026-12-02"), ["d20261201", "d20261202"]);
        assert!(
            union("2027").is_empty(),
            "nothing can be stored after tomorrow"
        );
    }

    /// The range starting `start` days after `origin` and ending `len` days later: the
    /// period, its first day and its last.
    fn range(origin: Date, start: i32, len: i32) -> (Period, Date, Date) {
        let first = origin + time::Duration::days(i64::from(start));
        let last = first + time::Duration::days(i64::from(len));
        let period = Period::parse(&format!("{first}..{last}"), TODAY).expect("valid range");
        (period, first, last)
    }

    /// The [`range`] `start` days after 2024-01-01 and `len` days long: the period, its first
    /// day, and the last day that can hold data, `horizon` days after 2024-01-01.
    fn range_and_horizon(start: i32, len: i32, horizon: i32) -> (Period, Date, Date) {
        let origin = date!(2024 - 01 - 01);
        let (period, first, _) = range(origin, start, len);
        (
            period,
            first,
            origin + time::Duration::days(i64::from(horizon)),
        )
    }

    /// How many of `buckets` hold `day`.
    fn weight(buckets: &[Bucket], day: Date) -> i64 {
        buckets
            .iter()
            .filter(|b| b.first_day() <= day && day <= b.last_day())
            .count() as i64
    }

    /// Every day from the earliest of `first` and `buckets`' first days to `last_possible`,
    /// 2029-12-31 at the latest.
    fn days_to_check(
        buckets: &[Bucket],
        first: Date,
        last_possible: Date,
    ) -> impl Iterator<Item = Date> {
        let lowest = buckets
            .iter()
            .map(|b| b.first_day())
            .min()
            .unwrap_or(first)
            .min(first);
        let end = last_possible.min(date!(2029 - 12 - 31));
        std::iter::successors(Some(lowest), |day| day.next_day()).take_while(move |day| *day <= end)
    }

    proptest! {
        /// A union cover holds every day of the period that can hold data, once, and no other
        /// day that can; it never reads more buckets than the cover.
        #[test]
        fn a_union_cover_holds_exactly_the_possible_days(start in 0i32..1500, len in 0i32..800, horizon in 0i32..1500) {
            let (period, first, last_possible) = range_and_horizon(start, len, horizon);
            let union = period.union_cover(last_possible);
            prop_assert!(union.len() <= period.cover().len());
            for day in days_to_check(&union, first, last_possible) {
                prop_assert_eq!(weight(&union, day), i64::from(period.contains(day)), "day {}", day);
            }
        }

        /// For every day that can hold data, the plan counts it once if it is in the period
        /// and not at all otherwise; and the plan never reads more than the cover.
        #[test]
        fn a_read_plan_counts_each_possible_day_exactly(start in 0i32..1500, len in 0i32..800, horizon in 0i32..1500) {
            let (period, first, last_possible) = range_and_horizon(start, len, horizon);
            let plan = period.read_plan(last_possible);
            prop_assert!(plan.len() <= period.cover().len());
            for day in days_to_check(&plan.add, first, last_possible) {
                let expected = i64::from(period.contains(day));
                prop_assert_eq!(weight(&plan.add, day) - weight(&plan.subtract, day), expected, "day {}", day);
            }
        }

        /// The period before has as many days as the period (for ranges) and ends the day
        /// before it starts.
        #[test]
        fn the_previous_range_is_adjacent_and_as_long(start in 0i32..3000, len in 1i32..400) {
            let (period, first, last) = range(date!(2020 - 01 - 02), start, len);
            let previous = period.previous();
            prop_assert_eq!(previous.last_day().next_day(), Some(first));
            if period.as_bucket().is_none() {
                prop_assert_eq!(previous.last_day() - previous.first_day(), last - first);
            }
        }

        /// The cover of any range holds every day of the range exactly once, and nothing else.
        #[test]
        fn cover_is_an_exact_partition(start in 0i32..3000, len in 0i32..1200) {
            let (period, first, last) = range(date!(2020 - 01 - 01), start, len);
            let buckets = period.cover();
            let mut expected = first;
            for b in &buckets {
                prop_assert_eq!(b.first_day(), expected);
                prop_assert!(b.last_day() <= last);
                expected = b.last_day().next_day().expect("in range");
            }
            prop_assert_eq!(expected, last.next_day().expect("in range"));
            // Never more than the worst case: days and months on both sides plus years.
            prop_assert!(buckets.len() <= 31 + 2 + 3 + 2 + 31 + 4);
        }
    }

    #[test]
    fn iso_weeks_run_monday_to_sunday_and_week_one_may_begin_the_year_before() {
        let w49 = parse("2026-W49");
        assert_eq!(
            (w49.first_day(), w49.last_day()),
            (date!(2026 - 11 - 30), date!(2026 - 12 - 06))
        );
        let w01 = parse("2026-W01");
        assert_eq!(
            (w01.first_day(), w01.last_day()),
            (date!(2025 - 12 - 29), date!(2026 - 01 - 04))
        );
        assert_eq!(parse("2026-w01"), w01);
        // The previous week of week 1 is the last of the ISO year before.
        assert_eq!(w01.previous().expression(), "2025-W52");
        assert_eq!(w49.previous().expression(), "2026-W48");
        // The same week of last year is the week of the same number.
        assert_eq!(w49.same_period_last_year().expression(), "2025-W49");
        // 2026 is long (53 weeks); 2027 is not, and its week 53 does not exist.
        let w53 = parse("2026-W53");
        assert_eq!(w53.last_day(), date!(2027 - 01 - 03));
        assert_eq!(w53.same_period_last_year().expression(), "2025-W52");
        assert!(matches!(
            Period::parse("2027-W53", TODAY),
            Err(PeriodError::BadDate(_))
        ));
        for bad in ["2026-W0", "2026-W100", "2026-Wx1", "2026-W"] {
            assert!(Period::parse(bad, TODAY).is_err(), "{bad}");
        }
        assert!(matches!(
            Period::parse("1999-W10", TODAY),
            Err(PeriodError::YearOutOfRange)
        ));
        // 1 January 2000 lies in 1999-W52; the first week a period may name begins on the
        // 3rd.
        assert_eq!(
            Period::week_of(date!(2000 - 01 - 01)).expression(),
            "1999-W52"
        );
        assert_eq!(parse("2000-W01").first_day(), date!(2000 - 01 - 03));
        assert!(Period::parse("2026-W00", TODAY).is_err());
        // Read like any other seven days: nothing when they all lie after the last day
        // that can hold data.
        assert!(w49.read_plan(TODAY).is_empty());
    }

    proptest! {
        /// Every Vietnam day lies in exactly the ISO week its name gives: seven days from a
        /// Monday, following the week before without a gap, whatever the instant in UTC+7.
        #[test]
        fn the_week_of_any_instant_in_vietnam_holds_its_day(
            // From the first ISO week of 2000 (which begins on Monday 3 January: 1 and 2
            // January 2000 lie in 1999-W52, a year no period may name) to December 2100.
            seconds in 946_857_600i64..4_131_302_400i64,
        ) {
            let at = OffsetDateTime::from_unix_timestamp(seconds).expect("instant");
            let day = vietnam_day(at);
            let (year, number, _) = day.to_iso_week_date();
            let week = Period::parse(&format!("{year:04}-W{number:02}"), TODAY).expect("week");
            prop_assert!(week.contains(day));
            prop_assert_eq!(week.first_day().weekday(), time::Weekday::Monday);
            prop_assert_eq!(week.last_day() - week.first_day(), time::Duration::days(6));
            prop_assert_eq!(week.previous().last_day().next_day(), Some(week.first_day()));
            prop_assert_eq!(Period::week_of(day), week.clone());
            // Monday 00:00 in Vietnam is Sunday 17:00 UTC: it opens the next week.
            let monday = week.last_day().next_day().expect("a next day");
            let opening = monday.midnight().assume_offset(VIETNAM);
            prop_assert_eq!(vietnam_day(opening), monday);
            prop_assert!(!week.contains(vietnam_day(opening)));
            prop_assert!(week.contains(vietnam_day(opening - time::Duration::seconds(1))));
        }
    }
}
