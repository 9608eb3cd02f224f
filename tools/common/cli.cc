#include "tools/common/cli.h"

#include <cctype>
#include <cstdio>
#include <cstring>
#include <vector>

#ifndef DAXREF_VERSION
#define DAXREF_VERSION "unknown"
#endif

namespace daxref::cli {
namespace {

// What getopt_long rejected, in its own words: "invalid option -- 'x'" for a
// short option, "unrecognized option '--xyz'" for a long one.
std::string BadOption(int optopt, const char* arg) {
  // "-5" is a number given where a positive one belongs, not an option.
  if (optopt >= '0' && optopt <= '9' && arg[0] == '-' && arg[1] >= '0' && arg[1] <= '9')
    return std::string("negative number '") + arg +
           "': offsets, lengths and sizes are not negative";
  if (optopt > ' ' && optopt < 127)
    return std::string("invalid option -- '") + static_cast<char>(optopt) + "'";
  return std::string("unrecognized option '") + arg + "'";
}

// An option given last without the argument it needs; `arg` is the word it
// was in ("--file", or "-nC" for -C).
std::string MissingArgument(int optopt, const char* arg) {
  const std::string name = std::strncmp(arg, "--", 2) == 0
                               ? std::string(arg)
                               : std::string("-") + static_cast<char>(optopt);
  return "option '" + name + "' needs an argument";
}

}  // namespace

std::optional<int> Tool::ParseOptions(
    int argc, char** argv, std::string_view shorts, std::initializer_list<option> longs,
    void (*print_help)(), const std::function<void(int val, const char* arg)>& on_option) const {
  // The leading ':' has getopt_long tell a missing argument (':') from an
  // unknown option ('?'); opterr = 0 keeps its own messages off stderr.
  const std::string short_options = ":" + std::string(shorts) + "hV";
  std::vector<option> long_options(longs);
  long_options.push_back({"help", no_argument, nullptr, 'h'});
  long_options.push_back({"version", no_argument, nullptr, 'V'});
  long_options.push_back({nullptr, 0, nullptr, 0});
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, short_options.c_str(), long_options.data(), nullptr)) != -1) {
    switch (c) {
      case 'h':
        print_help();
        return 0;
      case 'V':
        return PrintVersion();
      case ':':
        return Usage(MissingArgument(optopt, argv[optind - 1]));
      case '?':
        return Usage(BadOption(optopt, argv[optind - 1]));
      default:
        on_option(c, optarg);
    }
  }
  return std::nullopt;
}

int Tool::Usage(const std::string& message) const {
  fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", name_, message.c_str(), name_);
  return usage_status_;
}

int Tool::Fail(const std::string& message) const {
  return FailWith(failure_status_, message);
}

int Tool::Fail(const std::string& what, int err, const std::string& hint) const {
  return Fail(what + ": " + strerror(err) + hint);
}

int Tool::FailWith(int status, const std::string& message) const {
  fflush(stdout);
  fprintf(stderr, "%s: %s\n", name_, Printable(message).c_str());
  return status;
}

int Tool::PrintVersion() const {
  printf("%s %s\n", name_, DAXREF_VERSION);
  return 0;
}

bool ParseSize(std::string_view text, std::string_view what, uint64_t* out, std::string* error) {
  auto fail = [&](const char* why) {
    *error = std::string(why) + " " + std::string(what) + " '" + std::string(text) +
             "': expected a number with an optional K, M, G or T suffix (e.g. 64K)";
    return false;
  };
  size_t i = 0;
  uint64_t n = 0;
  bool too_large = false;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (n > (UINT64_MAX - digit) / 10) too_large = true;
    n = n * 10 + digit;
  }
  if (i == 0) return fail("invalid");
  std::string suffix;
  for (char c : text.substr(i)) suffix += static_cast<char>(tolower(static_cast<unsigned char>(c)));
  int shift = 0;
  if (!suffix.empty() && suffix != "b") {
    static constexpr std::string_view kUnits = "kmgt";
    size_t unit = kUnits.find(suffix[0]);
    std::string_view rest = std::string_view(suffix).substr(1);
    if (unit == std::string_view::npos || !(rest.empty() || rest == "b" || rest == "ib"))
      return fail("invalid");
    shift = 10 * static_cast<int>(unit + 1);
  }
  if (too_large || n > (UINT64_MAX >> shift)) {
    *error = std::string(what) + " '" + std::string(text) + "' is too large";
    return false;
  }
  *out = n << shift;
  return true;
}

void AppendJson(std::string* out, std::string_view text) {
  out->push_back('"');
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\t':
        *out += "\\t";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\b':
        *out += "\\b";
        break;
      case '\f':
        *out += "\\f";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          char buf[8];
          snprintf(buf, sizeof(buf), "\\u%04x", u);
          *out += buf;
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

std::string Json(std::string_view text) {
  std::string out;
  AppendJson(&out, text);
  return out;
}

std::string Printable(std::string_view text) {
  std::string out;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\x%02x", u);
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace daxref::cli
