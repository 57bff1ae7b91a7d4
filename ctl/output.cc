#include "ctl/output.h"

#include <algorithm>
#include <utility>

#include "ctl/text.h"

namespace rampart::ctl {
namespace {

void Pad(std::ostream& out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    out.put(' ');
  }
}

}  // namespace

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  for (std::string& cell : cells) {
    cell = SanitizeForTerminal(cell);
  }
  rows_.push_back(std::move(cells));
}

void Table::Render(std::ostream& out) const {
  std::vector<size_t> widths(columns_.size());
  for (size_t c = 0; c < columns_.size(); ++c) {
    widths[c] = DisplayWidth(columns_[c].header);
    for (const auto& row : rows_) {
      widths[c] = std::max(widths[c], DisplayWidth(row[c]));
    }
  }
  const auto line = [&](const auto& cell_at) {
    // Trailing empty cells are not padded, so lines carry no trailing blanks.
    size_t last = columns_.size();
    while (last > 0 && std::string_view(cell_at(last - 1)).empty()) {
      --last;
    }
    for (size_t c = 0; c < last; ++c) {
      const std::string_view cell = cell_at(c);
      const size_t fill = widths[c] - DisplayWidth(cell);
      if (c > 0) {
        out << "  ";
      }
      if (columns_[c].align == Align::kRight) {
        Pad(out, fill);
        out << cell;
      } else {
        out << cell;
        if (c + 1 < last) {
          Pad(out, fill);
        }
      }
    }
    out << '\n';
  };
  line([&](size_t c) -> const std::string& { return columns_[c].header; });
  for (const auto& row : rows_) {
    line([&](size_t c) -> const std::string& { return row[c]; });
  }
}

void Fields::Add(std::string_view label, std::string_view value) {
  fields_.emplace_back(std::string(label) + ":", SanitizeForTerminal(value));
}

void Fields::Render(std::ostream& out) const {
  size_t width = 0;
  for (const auto& [label, value] : fields_) {
    width = std::max(width, DisplayWidth(label));
  }
  for (const auto& [label, value] : fields_) {
    out << label;
    if (!value.empty()) {
      Pad(out, width - DisplayWidth(label) + 2);
      out << value;
    }
    out << '\n';
  }
}

void WriteCsvRow(std::ostream& out, const std::vector<std::string>& fields) {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) {
      out << ',';
    }
    const std::string& f = fields[i];
    if (f.find_first_of(",\"\r\n") == std::string::npos) {
      out << f;
      continue;
    }
    out << '"';
    for (char c : f) {
      if (c == '"') {
        out << '"';
      }
      out << c;
    }
    out << '"';
  }
  out << "\r\n";
}

std::string CsvText(std::string_view text) {
  std::string s = SanitizeForTerminal(text);
  if (!s.empty() &&
      (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@')) {
    s.insert(s.begin(), '\'');
  }
  return s;
}

void WriteJson(std::ostream& out, const Json& doc) {
  out << doc.dump(2, ' ', false, Json::error_handler_t::replace) << '\n';
}

void WriteJsonLine(std::ostream& out, const Json& doc) {
  out << doc.dump(-1, ' ', false, Json::error_handler_t::replace) << '\n';
  out.flush();
}

}  // namespace rampart::ctl
