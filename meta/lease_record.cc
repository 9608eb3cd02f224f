#include "meta/lease_record.h"

#include "meta/codec.h"

namespace daxref {

const char* LeaseModeName(LeaseMode m) {
  return m == LeaseMode::kWrite ? "write" : "read";
}

// Value: ino u64, fblock u64, blocks u64, mode u8, uid u32, pid u32,
// start_time u64, boot_id 16 bytes, extent count u32, then per extent
// fblock u64, pblock u64, blocks u64.
std::string EncodeLease(const LeaseRecord& r) {
  std::string v;
  v.reserve(kLeaseHeaderSize + r.extents.size() * kLeaseExtentSize);
  codec::PutU64(&v, r.ino);
  codec::PutU64(&v, r.fblock);
  codec::PutU64(&v, r.blocks);
  codec::PutU8(&v, static_cast<uint8_t>(r.mode));
  codec::PutU32(&v, r.uid);
  codec::PutU32(&v, r.pid);
  codec::PutU64(&v, r.start_time);
  v.append(reinterpret_cast<const char*>(r.boot_id.data()), r.boot_id.size());
  codec::PutU32(&v, static_cast<uint32_t>(r.extents.size()));
  for (const LeasedExtent& e : r.extents) {
    codec::PutU64(&v, e.fblock);
    codec::PutU64(&v, e.pblock);
    codec::PutU64(&v, e.blocks);
  }
  return v;
}

namespace {

std::string Run(uint64_t start, uint64_t len) {
  return "[" + std::to_string(start) + ", +" + std::to_string(len) + ")";
}

// Everything but the encoding: "" when r is a valid lease, else why not.
std::string Why(const LeaseRecord& r, const PoolGeometry& geo) {
  if (r.ino == 0) return "inode 0";
  if (!ValidFileRun(r.fblock, r.blocks))
    return "file blocks " + Run(r.fblock, r.blocks) + " are not a valid run";
  if (r.mode != LeaseMode::kRead && r.mode != LeaseMode::kWrite)
    return "unknown mode " + std::to_string(static_cast<unsigned>(r.mode));
  if (r.pid == 0) return "holder pid 0";
  uint64_t pos = r.fblock;
  for (const LeasedExtent& e : r.extents) {
    const std::string ext = "extent at file block " + std::to_string(e.fblock);
    if (e.blocks == 0) return ext + ": length 0";
    if (e.fblock < pos) return ext + ": out of order or overlapping the one before it";
    if (e.fblock >= r.fend() || e.blocks > r.fend() - e.fblock)
      return ext + ": outside the lease's file blocks " + Run(r.fblock, r.blocks);
    if (!geo.InData(e.pblock, e.blocks))
      return ext + ": pool blocks " + Run(e.pblock, e.blocks) + " are outside the data area [" +
             std::to_string(geo.first_data_block()) + ", " + std::to_string(geo.data_end()) + ")";
    if (r.mode == LeaseMode::kWrite && e.fblock != pos)
      return "write lease with a hole at file block " + std::to_string(pos);
    pos = e.fend();
  }
  if (r.mode == LeaseMode::kWrite && pos != r.fend())
    return "write lease with a hole at file block " + std::to_string(pos);
  return "";
}

}  // namespace

Status ValidateLease(const LeaseRecord& r, const PoolGeometry& geo) {
  if (std::string why = Why(r, geo); !why.empty())
    return Status::Invalid("lease " + std::to_string(r.id) + ": " + why);
  return Status::Ok();
}

Status DecodeLease(std::string_view key, std::string_view v, const PoolGeometry& geo,
                   LeaseRecord* out) {
  if (key.size() != 9 || key[0] != prefix::kLease)
    return Status::Corruption("lease record with a bad key");
  *out = LeaseRecord{};
  out->id = keys::U64At(key, 1);
  const std::string who = "lease record " + std::to_string(out->id);
  codec::Reader r(v);
  out->ino = r.U64();
  out->fblock = r.U64();
  out->blocks = r.U64();
  const uint8_t mode = r.U8();
  out->uid = r.U32();
  out->pid = r.U32();
  out->start_time = r.U64();
  if (!r.ok() || v.size() < kLeaseHeaderSize) return Status::Corruption(who + ": bad size");
  for (size_t i = 0; i < out->boot_id.size(); ++i) out->boot_id[i] = static_cast<uint8_t>(r.U8());
  const uint32_t count = r.U32();
  if (!r.ok()) return Status::Corruption(who + ": bad size");
  const size_t rest = v.size() - kLeaseHeaderSize;
  if (rest % kLeaseExtentSize != 0 || rest / kLeaseExtentSize != count)
    return Status::Corruption(who + ": " + std::to_string(count) +
                              " extents do not match its size (" + std::to_string(v.size()) +
                              " bytes)");
  if (mode != static_cast<uint8_t>(LeaseMode::kRead) &&
      mode != static_cast<uint8_t>(LeaseMode::kWrite))
    return Status::Corruption(who + ": unknown mode " + std::to_string(mode));
  out->mode = static_cast<LeaseMode>(mode);
  out->extents.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    LeasedExtent e{};
    e.fblock = r.U64();
    e.pblock = r.U64();
    e.blocks = r.U64();
    out->extents.push_back(e);
  }
  if (!r.ok() || !r.done()) return Status::Corruption(who + ": bad size");
  if (std::string why = Why(*out, geo); !why.empty()) return Status::Corruption(who + ": " + why);
  return Status::Ok();
}

}  // namespace daxref
