#include "attend/data/dates.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace attend::dates {

namespace {
const char* kMonths[] = {"January", "February", "March",     "April",   "May",      "June",
                         "July",    "August",   "September", "October", "November", "December"};
const char* kWeekdays[] = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

std::string num(int v, bool pad) {
  std::string s = pad && v < 10 ? "0" : "";
  s += std::to_string(v);
  return s;
}

std::string ordinal(int d) {
  const int m100 = d % 100, m10 = d % 10;
  const char* suffix = (m100 >= 11 && m100 <= 13) ? "th" : m10 == 1 ? "st" : m10 == 2 ? "nd" : m10 == 3 ? "rd" : "th";
  return std::to_string(d) + suffix;
}

bool coin(Rng& rng, float p = 0.5f) { return rng.uniform() < p; }

std::string month_name(int m, Rng& rng) {
  std::string full = kMonths[m - 1];
  if (coin(rng)) return full;
  std::string abbr = full.substr(0, 3);
  if (m == 9 && coin(rng, 0.3f)) abbr = "Sept";
  return abbr + (coin(rng) ? "." : "");
}

std::string weekday_name(const Date& d, Rng& rng) {
  std::string w = kWeekdays[weekday(d)];
  return coin(rng, 0.7f) ? w : w.substr(0, 3);
}

// Optional comma (the dates task is tolerant of missing commas).
std::string comma(Rng& rng) { return coin(rng, 0.7f) ? "," : ""; }

std::string year2(int y) { return num(y % 100, true); }

// Random casing and spacing, the way people type.
std::string vary(std::string s, Rng& rng) {
  const float r = rng.uniform();
  if (r < 0.15f) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  } else if (r < 0.25f) {
    for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  if (coin(rng, 0.1f)) {  // an extra space somewhere between words
    std::vector<size_t> spaces;
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] == ' ') spaces.push_back(i);
    if (!spaces.empty()) s.insert(s.begin() + static_cast<std::ptrdiff_t>(spaces[rng.below(spaces.size())]), ' ');
  }
  return s;
}
}  // namespace

std::string iso(const Date& d) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", d.year, d.month, d.day);
  return buf;
}

int days_in_month(int y, int m) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

int weekday(const Date& d) {
  // Days since 1970-01-01 (a Thursday), Hinnant's days_from_civil.
  const int y = d.year - (d.month <= 2);
  const int era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (d.month + (d.month > 2 ? -3 : 9)) + 2) / 5 + d.day - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const long days = era * 146097L + static_cast<long>(doe) - 719468L;
  return static_cast<int>(((days % 7) + 7 + 3) % 7);  // 1970-01-01 -> 3 (Thursday)
}

std::vector<Date> all_dates() {
  std::vector<Date> out;
  for (int y = 1900; y <= 2099; ++y)
    for (int m = 1; m <= 12; ++m)
      for (int d = 1; d <= days_in_month(y, m); ++d) out.push_back({y, m, d});
  return out;
}

int format_count() { return 12; }

std::string render(const Date& d, int format, Rng& rng) {
  const bool two_digit_ok = d.year >= 1950 && d.year <= 2049;
  const bool pd = coin(rng), pm = coin(rng);  // leading zeros
  const std::string Y = std::to_string(d.year);
  std::string s;
  switch (format) {
    case 0:
      s = num(d.day, pd) + " " + kMonths[d.month - 1] + " " + Y;
      break;
    case 1:
      s = num(d.day, pd) + " " + month_name(d.month, rng) + " " + Y;
      break;
    case 2:
      s = std::string(kMonths[d.month - 1]) + " " + num(d.day, pd) + comma(rng) + " " + Y;
      break;
    case 3:
      s = month_name(d.month, rng) + " " + num(d.day, pd) + comma(rng) + " " + Y;
      break;
    case 4:
      s = weekday_name(d, rng) + comma(rng) + " " + month_name(d.month, rng) + " " + num(d.day, pd) + comma(rng) + " " +
          Y;
      break;
    case 5:
      if (!two_digit_ok) return "";
      s = num(d.month, pm) + "/" + num(d.day, pd) + "/" + year2(d.year);
      break;
    case 6:
      s = num(d.month, pm) + "/" + num(d.day, pd) + "/" + Y;
      break;
    case 7:
      if (!two_digit_ok) return "";
      s = num(d.day, pd) + "." + num(d.month, pm) + "." + year2(d.year);
      break;
    case 8:
      s = num(d.day, pd) + "." + num(d.month, pm) + "." + Y;
      break;
    case 9:
      s = Y + "-" + num(d.month, true) + "-" + num(d.day, true);
      break;
    case 10:
      s = ordinal(d.day) + " of " + month_name(d.month, rng) + comma(rng) + " " + Y;
      break;
    case 11:
      s = std::string("the ") += ordinal(d.day) + " of " + month_name(d.month, rng) + comma(rng) + " " + Y;
      break;
    default:
      throw std::invalid_argument("dates::render: format " + std::to_string(format) + " outside [0, 12)");
  }
  return vary(s, rng);
}

std::string render_any(const Date& d, Rng& rng) {
  for (;;) {
    std::string s = render(d, static_cast<int>(rng.below(format_count())), rng);
    if (!s.empty()) return s;
  }
}

Splits make_splits(int train_size, int dev_size, int test_size, uint64_t seed) {
  if (train_size < 1 || dev_size < 1 || test_size < 1) {
    throw std::invalid_argument("dates: split sizes must be >= 1, got train " + std::to_string(train_size) + ", dev " +
                                std::to_string(dev_size) + ", test " + std::to_string(test_size));
  }
  std::vector<Date> days = all_dates();
  if (dev_size + test_size >= static_cast<int>(days.size())) {
    throw std::invalid_argument("dates: dev + test (" + std::to_string(dev_size + test_size) +
                                ") leave no training dates");
  }
  Rng rng(seed);
  for (size_t i = days.size() - 1; i > 0; --i) std::swap(days[i], days[rng.below(i + 1)]);  // Fisher-Yates
  Splits out;
  for (int i = 0; i < test_size; ++i) out.test.push_back({render_any(days[i], rng), iso(days[i])});
  for (int i = 0; i < dev_size; ++i)
    out.dev.push_back({render_any(days[test_size + i], rng), iso(days[test_size + i])});
  const size_t first = static_cast<size_t>(test_size + dev_size), pool = days.size() - first;
  for (int i = 0; i < train_size; ++i) {
    const Date& d = days[first + static_cast<size_t>(i) % pool];  // cycles through the pool, one format each
    out.train.push_back({render_any(d, rng), iso(d)});
  }
  return out;
}

}  // namespace attend::dates
