/* Direct access to daxref files: map a file range's pool blocks straight
 * into the program's address space under a layout lease (docs/dax.md,
 * daxref_dax(3)). Link with -ldaxref-dax.
 *
 * A lease is granted only to root or the owner of the filesystem's pool,
 * on a descriptor of a regular file of a daxref mount, with the access the
 * descriptor has (a write lease needs O_RDWR). The daemon revokes it before
 * anything would move, share, free or poison a block under it; the library
 * then replaces the mapping with an inaccessible one (loads and stores
 * fault with SIGSEGV) and calls the revoke callback.
 *
 * Every function returns 0 (or a pointer) on success and -1 (or NULL) with
 * errno set on failure. The functions are thread-safe; a map must not be
 * used after daxref_dax_unmap. */
#ifndef DAXREF_DAX_H
#define DAXREF_DAX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DAXREF_DAX_READ 0x1  /* loads only (PROT_READ) */
#define DAXREF_DAX_WRITE 0x2 /* loads and stores (PROT_READ | PROT_WRITE) */

/* Why a lease was revoked (the daemon's reason, for the revoke callback). */
enum daxref_dax_reason {
	DAXREF_DAX_REVOKED_OTHER = 0,
	DAXREF_DAX_REVOKED_TRUNCATE = 1,   /* truncate below the range's end */
	DAXREF_DAX_REVOKED_PUNCH = 2,      /* punch hole, zero range, collapse, insert, unshare */
	DAXREF_DAX_REVOKED_WRITE = 3,      /* a write(2) that could not overwrite in place */
	DAXREF_DAX_REVOKED_CLONE = 4,      /* clone, copy_file_range or dedupe */
	DAXREF_DAX_REVOKED_RECLAIM = 5,    /* the file was deleted */
	DAXREF_DAX_REVOKED_UNMOUNT = 6,    /* unmount or shutdown */
	DAXREF_DAX_REVOKED_PRE_REMOVE = 7, /* the device is about to go */
	DAXREF_DAX_REVOKED_DAEMON_GONE = 8 /* the daemon's session ended */
};

/* One leased, mapped range. Opaque. (In C++ name the type
 * `struct daxref_dax_map`: the function daxref_dax_map hides the bare name.) */
struct daxref_dax_map;

/* Called on the library's thread after the mapping was made inaccessible
 * and the daemon told. Must not call daxref_dax_unmap on m (do it later). */
typedef void (*daxref_dax_revoke_fn)(struct daxref_dax_map *m, enum daxref_dax_reason why,
				     void *arg);
/* Called on the library's thread with the address (inside m's mapping) and
 * length of bytes that went bad. Without a callback the library raises
 * SIGBUS (si_code BUS_MCEERR_AO, si_addr = addr) in the process. */
typedef void (*daxref_dax_poison_fn)(struct daxref_dax_map *m, void *addr, size_t length,
				     void *arg);

/* Leases [offset, offset + length) of the file open on fd and maps it:
 * *addr is the byte at `offset`. The range is rounded out to the block size
 * for the lease; it must lie within the file's size (ENXIO otherwise).
 * flags: DAXREF_DAX_READ or DAXREF_DAX_WRITE.
 * Errors: EPERM (not root or the pool's owner), EBADF (the descriptor lacks
 * the access), EROFS, EINVAL (not a regular file, bad flags, length 0),
 * ENOTTY (not a daxref file), ENXIO, EIO (a bad block in the range), ENOSPC
 * (a write lease's holes or shared blocks could not be given blocks), ENOMEM. */
struct daxref_dax_map *daxref_dax_map(int fd, uint64_t offset, uint64_t length, int flags,
				      void **addr);

/* Makes stores to [addr, addr + length) (inside m) durable. */
int daxref_dax_persist(struct daxref_dax_map *m, const void *addr, size_t length);

/* Persists [offset, offset + length) of the file (inside m's range) and has
 * the daemon drop the kernel's cached pages of it: after it returns, no
 * read(2) of the file through any descriptor serves older bytes. */
int daxref_dax_publish(struct daxref_dax_map *m, uint64_t offset, uint64_t length);

/* Ends the lease and unmaps (also after a revocation). */
int daxref_dax_unmap(struct daxref_dax_map *m);

/* The mapping: the byte at the lease's file offset `offset` given to
 * daxref_dax_map, and the length asked for. */
void *daxref_dax_addr(const struct daxref_dax_map *m);
size_t daxref_dax_length(const struct daxref_dax_map *m);
/* 1 when stores are durable once flushed from the CPU caches (MAP_SYNC on a
 * DAX filesystem), 0 when daxref_dax_persist has to msync. */
int daxref_dax_map_sync(const struct daxref_dax_map *m);
/* 1 once the lease was revoked, else 0. */
int daxref_dax_revoked(const struct daxref_dax_map *m);

int daxref_dax_on_revoke(struct daxref_dax_map *m, daxref_dax_revoke_fn fn, void *arg);
int daxref_dax_on_poison(struct daxref_dax_map *m, daxref_dax_poison_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* DAXREF_DAX_H */
