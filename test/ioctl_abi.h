/* The ioctl ABI of include/daxref/ioctl.h, fixed: every structure's size,
 * alignment and field offsets, and every command number, as docs/ioctl.md
 * ("Numbers and layouts") lists them. Included from C (ioctl_abi_c.c) and
 * from C++ (ioctl_abi_test.cc), so both languages see the same layout. A
 * failure here is a broken interface: programs built against the old header
 * would send the daemon different bytes. The interface only grows: a change
 * is a new structure with a new command number, never an edit of these.
 *
 * Written in the subset of C11 and C++ both compile: static_assert comes
 * from <assert.h> in C and is a keyword in C++. */
#ifndef DAXREF_TEST_IOCTL_ABI_H
#define DAXREF_TEST_IOCTL_ABI_H

#include <assert.h>
#include <stddef.h>

#include "daxref/ioctl.h"

#define DAXREF_ABI_FIELD(type, field, offset, size)                                    \
  static_assert(offsetof(struct type, field) == (offset), #type "." #field " offset"); \
  static_assert(sizeof(((struct type*)0)->field) == (size), #type "." #field " size")
#define DAXREF_ABI_SIZE(type, size) \
  static_assert(sizeof(struct type) == (size), #type " is " #size " bytes")
/* No structure needs more than 8-byte alignment, so none has tail padding
 * that differs between ABIs (its size is a multiple of 8 everywhere). */
#define DAXREF_ABI_ALIGN(type) \
  static_assert(sizeof(struct type) % 8 == 0, #type " has no tail padding")

static_assert(DAXREF_IOC_MAGIC == 0xDA, "ioctl type byte");
static_assert(DAXREF_TOKEN_LIFETIME_SEC == 60, "token lifetime");
static_assert(DAXREF_EXTENT_SHARED == 0x1 && DAXREF_EXTENT_LAST == 0x2, "extent flags");
static_assert(DAXREF_QUERY_MORE == 0x1, "query flag");
static_assert(DAXREF_EXTENTS_PER_CALL == 400, "extents per call");
static_assert(DAXREF_OWNERS_PER_CALL == 400, "owners per call");
static_assert(DAXREF_PATHS_BYTES == 16000, "paths buffer");
static_assert(DAXREF_INFO_MAGIC == 0x6461787265664653ULL, "info magic");

DAXREF_ABI_SIZE(daxref_token, 16);
DAXREF_ABI_FIELD(daxref_token, value, 0, 16);

DAXREF_ABI_SIZE(daxref_clone_range, 48);
DAXREF_ABI_FIELD(daxref_clone_range, src, 0, 16);
DAXREF_ABI_FIELD(daxref_clone_range, src_offset, 16, 8);
DAXREF_ABI_FIELD(daxref_clone_range, src_length, 24, 8);
DAXREF_ABI_FIELD(daxref_clone_range, dest_offset, 32, 8);
DAXREF_ABI_FIELD(daxref_clone_range, flags, 40, 8);

DAXREF_ABI_SIZE(daxref_dedupe_range, 56);
DAXREF_ABI_FIELD(daxref_dedupe_range, src, 0, 16);
DAXREF_ABI_FIELD(daxref_dedupe_range, src_offset, 16, 8);
DAXREF_ABI_FIELD(daxref_dedupe_range, src_length, 24, 8);
DAXREF_ABI_FIELD(daxref_dedupe_range, dest_offset, 32, 8);
DAXREF_ABI_FIELD(daxref_dedupe_range, bytes_deduped, 40, 8);
DAXREF_ABI_FIELD(daxref_dedupe_range, status, 48, 4);
DAXREF_ABI_FIELD(daxref_dedupe_range, reserved, 52, 4);

DAXREF_ABI_SIZE(daxref_range, 24);
DAXREF_ABI_FIELD(daxref_range, offset, 0, 8);
DAXREF_ABI_FIELD(daxref_range, length, 8, 8);
DAXREF_ABI_FIELD(daxref_range, flags, 16, 8);

DAXREF_ABI_SIZE(daxref_extent, 32);
DAXREF_ABI_FIELD(daxref_extent, logical, 0, 8);
DAXREF_ABI_FIELD(daxref_extent, physical, 8, 8);
DAXREF_ABI_FIELD(daxref_extent, length, 16, 8);
DAXREF_ABI_FIELD(daxref_extent, flags, 24, 4);
DAXREF_ABI_FIELD(daxref_extent, refcount, 28, 4);

DAXREF_ABI_SIZE(daxref_extent_query, 12832);
DAXREF_ABI_FIELD(daxref_extent_query, start, 0, 8);
DAXREF_ABI_FIELD(daxref_extent_query, length, 8, 8);
DAXREF_ABI_FIELD(daxref_extent_query, next, 16, 8);
DAXREF_ABI_FIELD(daxref_extent_query, count, 24, 4);
DAXREF_ABI_FIELD(daxref_extent_query, flags, 28, 4);
DAXREF_ABI_FIELD(daxref_extent_query, extents, 32, 400 * 32);

DAXREF_ABI_SIZE(daxref_owner, 32);
DAXREF_ABI_FIELD(daxref_owner, physical, 0, 8);
DAXREF_ABI_FIELD(daxref_owner, length, 8, 8);
DAXREF_ABI_FIELD(daxref_owner, ino, 16, 8);
DAXREF_ABI_FIELD(daxref_owner, logical, 24, 8);

DAXREF_ABI_SIZE(daxref_owner_query, 12856);
DAXREF_ABI_FIELD(daxref_owner_query, physical, 0, 8);
DAXREF_ABI_FIELD(daxref_owner_query, length, 8, 8);
DAXREF_ABI_FIELD(daxref_owner_query, cursor, 16, 32);
DAXREF_ABI_FIELD(daxref_owner_query, count, 48, 4);
DAXREF_ABI_FIELD(daxref_owner_query, flags, 52, 4);
DAXREF_ABI_FIELD(daxref_owner_query, owners, 56, 400 * 32);

DAXREF_ABI_SIZE(daxref_paths_query, 16024);
DAXREF_ABI_FIELD(daxref_paths_query, ino, 0, 8);
DAXREF_ABI_FIELD(daxref_paths_query, skip, 8, 4);
DAXREF_ABI_FIELD(daxref_paths_query, count, 12, 4);
DAXREF_ABI_FIELD(daxref_paths_query, flags, 16, 4);
DAXREF_ABI_FIELD(daxref_paths_query, bytes, 20, 4);
DAXREF_ABI_FIELD(daxref_paths_query, buf, 24, 16000);

DAXREF_ABI_SIZE(daxref_info, 32);
DAXREF_ABI_FIELD(daxref_info, magic, 0, 8);
DAXREF_ABI_FIELD(daxref_info, abi_version, 8, 4);
DAXREF_ABI_FIELD(daxref_info, block_size, 12, 4);
DAXREF_ABI_FIELD(daxref_info, pool_blocks, 16, 8);
DAXREF_ABI_FIELD(daxref_info, free_blocks, 24, 8);

DAXREF_ABI_ALIGN(daxref_token);
DAXREF_ABI_ALIGN(daxref_clone_range);
DAXREF_ABI_ALIGN(daxref_dedupe_range);
DAXREF_ABI_ALIGN(daxref_range);
DAXREF_ABI_ALIGN(daxref_extent);
DAXREF_ABI_ALIGN(daxref_extent_query);
DAXREF_ABI_ALIGN(daxref_owner);
DAXREF_ABI_ALIGN(daxref_owner_query);
DAXREF_ABI_ALIGN(daxref_paths_query);
DAXREF_ABI_ALIGN(daxref_info);

static_assert(DAXREF_DAX_SOCKET_BYTES == 512, "dax socket path buffer");
DAXREF_ABI_SIZE(daxref_dax_info, 528);
DAXREF_ABI_FIELD(daxref_dax_info, magic, 0, 8);
DAXREF_ABI_FIELD(daxref_dax_info, abi_version, 8, 4);
DAXREF_ABI_FIELD(daxref_dax_info, block_size, 12, 4);
DAXREF_ABI_FIELD(daxref_dax_info, socket, 16, 512);
DAXREF_ABI_ALIGN(daxref_dax_info);

/* Each command number's parts, on every architecture: direction, type byte,
 * number and argument size (the size is what the kernel forwards). */
#define DAXREF_ABI_IOC(cmd, dir, nr, size)                                      \
  static_assert(_IOC_DIR(cmd) == (dir) && _IOC_TYPE(cmd) == DAXREF_IOC_MAGIC && \
                    _IOC_NR(cmd) == (nr) && _IOC_SIZE(cmd) == (size),           \
                #cmd " is (" #dir ", 0xDA, " #nr ", " #size ")")
DAXREF_ABI_IOC(DAXREF_IOC_INFO, _IOC_READ, 0, 32);
DAXREF_ABI_IOC(DAXREF_IOC_TOKEN, _IOC_READ, 1, 16);
DAXREF_ABI_IOC(DAXREF_IOC_CLONE_RANGE, _IOC_WRITE, 2, 48);
DAXREF_ABI_IOC(DAXREF_IOC_DEDUPE_RANGE, _IOC_READ | _IOC_WRITE, 3, 56);
DAXREF_ABI_IOC(DAXREF_IOC_UNSHARE_RANGE, _IOC_WRITE, 4, 24);
DAXREF_ABI_IOC(DAXREF_IOC_EXTENTS, _IOC_READ | _IOC_WRITE, 5, 12832);
DAXREF_ABI_IOC(DAXREF_IOC_OWNERS, _IOC_READ | _IOC_WRITE, 6, 12856);
DAXREF_ABI_IOC(DAXREF_IOC_PATHS, _IOC_READ | _IOC_WRITE, 7, 16024);
DAXREF_ABI_IOC(DAXREF_IOC_COLLAPSE_RANGE, _IOC_WRITE, 8, 24);
DAXREF_ABI_IOC(DAXREF_IOC_INSERT_RANGE, _IOC_WRITE, 9, 24);
DAXREF_ABI_IOC(DAXREF_IOC_DAX_INFO, _IOC_READ, 10, 528);

/* The numbers themselves where the ioctl encoding is the generic one (x86,
 * arm64, riscv: direction in bits 30-31, size in 16-29, type 8-15, nr 0-7). */
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__) || defined(__riscv)
static_assert(DAXREF_IOC_INFO == 0x8020DA00u, "DAXREF_IOC_INFO");
static_assert(DAXREF_IOC_TOKEN == 0x8010DA01u, "DAXREF_IOC_TOKEN");
static_assert(DAXREF_IOC_CLONE_RANGE == 0x4030DA02u, "DAXREF_IOC_CLONE_RANGE");
static_assert(DAXREF_IOC_DEDUPE_RANGE == 0xC038DA03u, "DAXREF_IOC_DEDUPE_RANGE");
static_assert(DAXREF_IOC_UNSHARE_RANGE == 0x4018DA04u, "DAXREF_IOC_UNSHARE_RANGE");
static_assert(DAXREF_IOC_EXTENTS == 0xF220DA05u, "DAXREF_IOC_EXTENTS");
static_assert(DAXREF_IOC_OWNERS == 0xF238DA06u, "DAXREF_IOC_OWNERS");
static_assert(DAXREF_IOC_PATHS == 0xFE98DA07u, "DAXREF_IOC_PATHS");
static_assert(DAXREF_IOC_COLLAPSE_RANGE == 0x4018DA08u, "DAXREF_IOC_COLLAPSE_RANGE");
static_assert(DAXREF_IOC_INSERT_RANGE == 0x4018DA09u, "DAXREF_IOC_INSERT_RANGE");
static_assert(DAXREF_IOC_DAX_INFO == 0x8210DA0Au, "DAXREF_IOC_DAX_INFO");
#endif

#endif /* DAXREF_TEST_IOCTL_ABI_H */
