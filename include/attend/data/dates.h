// attend data: the built-in dates task. Human-readable dates (years 1900-2099) -> ISO YYYY-MM-DD.
//
// Formats (any case; day and month numbers with or without leading zeros; month abbreviations
// with or without a period; commas and extra spaces optional):
//   25 November 2026 | 25 Nov 2026 | November 25, 2026 | Nov 25 2026 | Wednesday, November 25, 2026
//   11/25/26 | 11/25/2026 (US order) | 25.11.26 | 25.11.2026 | 2026-11-25
//   25th of November 2026 | the 25th of november, 2026
// Two-digit years mean 1950-2049, so those formats are only used for dates in that range.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "attend/data/tsv.h"
#include "attend/random.h"

namespace attend::dates {

struct Date {
  int year, month, day;  // month 1-12, day 1-31
};

std::string iso(const Date& d);  // "2026-11-25"
int weekday(const Date& d);      // 0 = Monday ... 6 = Sunday
int days_in_month(int year, int month);
// Every date from 1900-01-01 to 2099-12-31, in order.
std::vector<Date> all_dates();
int format_count();
// Date d written in format f (0 <= f < format_count()), with random surface variation.
// Returns "" when the format cannot express d (a two-digit year outside 1950-2049).
std::string render(const Date& d, int format, Rng& rng);
// A random format that can express d.
std::string render_any(const Date& d, Rng& rng);

struct Splits {
  std::vector<Example> train, dev, test;
};
// Train, dev and test from disjoint sets of dates (test_dates and dev_dates held out first);
// every example renders its date in a random format. Deterministic for a seed.
Splits make_splits(int train_size, int dev_size, int test_size, uint64_t seed);

}  // namespace attend::dates
