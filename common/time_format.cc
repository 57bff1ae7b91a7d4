#include "common/time_format.h"

namespace rampart {

void AppendDigits(std::string* out, int64_t value, int width) {
  char buf[8];
  for (int i = width - 1; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  out->append(buf, static_cast<size_t>(width));
}

void AppendIsoTime(std::string* out, const absl::CivilSecond& t) {
  AppendDigits(out, t.year(), 4);
  out->push_back('-');
  AppendDigits(out, t.month(), 2);
  out->push_back('-');
  AppendDigits(out, t.day(), 2);
  out->push_back('T');
  AppendDigits(out, t.hour(), 2);
  out->push_back(':');
  AppendDigits(out, t.minute(), 2);
  out->push_back(':');
  AppendDigits(out, t.second(), 2);
}

}  // namespace rampart
