#include "tools/common/owner_report.h"

#include <cstdio>
#include <string_view>

#include "tools/common/cli.h"

namespace daxref::cli {

namespace {

std::string Blocks(uint64_t pblock, uint64_t blocks) {
  if (blocks <= 1) return "block " + std::to_string(pblock);
  return "blocks " + std::to_string(pblock) + ".." + std::to_string(pblock + blocks - 1);
}

// A number as the record carries it: digits only, else a string.
std::string JsonNumber(const std::string& v) {
  bool digits = !v.empty() && v.size() <= 20;
  for (char c : v) digits = digits && c >= '0' && c <= '9';
  return digits ? v : Json(v);
}

}  // namespace

uint64_t U64(const control::Record& r, std::string_view key) {
  uint64_t v = 0;
  return r.GetU64(key, &v) ? v : 0;
}

std::string Count(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

std::string BlockSpan(uint64_t pblock, uint64_t blocks) {
  return "blocks " + std::to_string(pblock) + ".." +
         std::to_string(blocks ? pblock + blocks - 1 : pblock) + " (" +
         Count(blocks, "block", "blocks") + ")";
}

bool OwnerComplete(const control::Record& r) {
  uint64_t v = 0;
  for (const char* key : {"ino", "pblock", "offset"})
    if (!r.GetU64(key, &v)) return false;
  for (const char* key : {"blocks", "length"})
    if (!r.GetU64(key, &v) || v == 0) return false;
  return true;
}

std::string OwnerText(const control::Record& r) {
  const uint64_t off = U64(r, "offset"), len = U64(r, "length");
  std::string line = "  inode " + std::to_string(U64(r, "ino")) + " at bytes " +
                     std::to_string(off) + ".." + std::to_string(len ? off + len - 1 : off) + " (" +
                     Blocks(U64(r, "pblock"), U64(r, "blocks")) + "): ";
  std::string more;
  int paths = 0;
  r.ForEach("path", [&](const std::string& path) {
    if (paths++ == 0)
      line += Printable(path);
    else
      more += "      also " + Printable(path) + "\n";
  });
  const std::string* error = r.Get("paths_error");
  if (error)
    line += std::string(paths ? " " : "") + "(paths: " + Printable(*error) + ")";
  else if (paths == 0)
    line += "(unlinked, still open)";
  std::string pids;
  int npids = 0;
  r.ForEach("pid",
            [&](const std::string& pid) { pids += (npids++ == 0 ? "" : ", ") + Printable(pid); });
  if (npids > 0) line += std::string(" (signalled ") + (npids == 1 ? "pid " : "pids ") + pids + ")";
  return line + "\n" + more;
}

std::string OwnerJson(const control::Record& r) {
  std::string out = "{";
  for (const char* key : {"ino", "pblock", "blocks", "offset", "length"})
    out +=
        std::string(out.size() > 1 ? ", " : "") + "\"" + key + "\": " + std::to_string(U64(r, key));
  std::string list;
  r.ForEach("path", [&](const std::string& p) { list += (list.empty() ? "" : ", ") + Json(p); });
  out += ", \"paths\": [" + list + "]";
  list.clear();
  r.ForEach("pid",
            [&](const std::string& p) { list += (list.empty() ? "" : ", ") + JsonNumber(p); });
  out += ", \"pids\": [" + list + "]";
  if (const std::string* error = r.Get("paths_error")) out += ", \"paths_error\": " + Json(*error);
  return out + "}";
}

void OwnersQueryPrinter::Begin() {
  if (begun_) return;
  begun_ = true;
  if (json_)
    // format_version: the version of this document (daxref-map(8)).
    printf("{\"format_version\": 1, \"command\": %s, \"pblock\": %llu, \"blocks\": %llu",
           Json(command_).c_str(), static_cast<unsigned long long>(pblock_),
           static_cast<unsigned long long>(blocks_));
  else
    printf("owners of %s:\n", BlockSpan(pblock_, blocks_).c_str());
}

void OwnersQueryPrinter::Owner(const control::Record& owner) {
  Begin();
  if (json_)
    printf("%s\n  %s", printed_ == 0 ? ", \"owners\": [" : ",", OwnerJson(owner).c_str());
  else
    fputs(OwnerText(owner).c_str(), stdout);
  ++printed_;
}

void OwnersQueryPrinter::Done(uint64_t owners) {
  Begin();
  if (json_)
    printf("%s, \"summary\": {\"owners\": %llu}}\n", printed_ ? "\n]" : ", \"owners\": []",
           static_cast<unsigned long long>(owners));
  else
    printf("%s\n", Count(owners, "owner", "owners").c_str());
}

void OwnersQueryPrinter::Failed(uint64_t err, const std::string& message) {
  if (!begun_ || !json_) return;
  printf("%s, \"error\": {\"errno\": %llu, \"message\": %s}}\n",
         printed_ ? "\n]" : ", \"owners\": []", static_cast<unsigned long long>(err),
         Json(message).c_str());
}

}  // namespace daxref::cli
