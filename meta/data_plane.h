// Where file bytes go. meta/ decides which pool blocks hold a file's data; the
// DataPlane moves the bytes. The daemon's implementation stores into the
// libpmem2 mapping of the pool; meta/'s own tests use a plain memory buffer.
#pragma once

#include <cstddef>
#include <cstdint>

#include "meta/status.h"

namespace daxref {

class DataPlane {
 public:
  virtual ~DataPlane() = default;
  // Copies len bytes to pool byte offset pool_off. On byte- or
  // cache-line-granular memory the bytes are durable when it returns; on a
  // page-granular pool they survive the process but need a persist (fsync)
  // to survive power loss.
  //
  // The four copies fail (EIO) when the memory itself does: a machine check
  // on poisoned persistent memory, or a pool file cut short under the
  // mapping. Bytes before the bad one may have moved; the implementation
  // reports where the fault was to whoever handles poison (pool/pool.h).
  virtual Status Write(uint64_t pool_off, const void* src, size_t len) = 0;
  // Copies len bytes out of the pool at pool_off.
  virtual Status Load(uint64_t pool_off, void* dst, size_t len) = 0;
  // Copies len bytes inside the pool (copy-on-write), durable as Write is.
  // The ranges do not overlap.
  virtual Status Copy(uint64_t dst_pool_off, uint64_t src_pool_off, size_t len) = 0;
  // Zeroes len bytes at pool byte offset pool_off, durable as Write is.
  virtual Status Zero(uint64_t pool_off, size_t len) = 0;
  // A hint that [pool_off, pool_off+len) (newly allocated blocks) is about
  // to be written in full, so the backing memory can be readied in one go.
  virtual void WillWrite(uint64_t pool_off, size_t len) {}
  // Makes earlier stores to [pool_off, pool_off+len) survive power loss too.
  // Called before a batch that points at newly allocated blocks commits; a
  // failure (the pool's host filesystem could not write the pages back:
  // EIO, ENOSPC) fails that operation, whose batch then never commits.
  virtual Status Persist(uint64_t pool_off, size_t len) = 0;
};

}  // namespace daxref
