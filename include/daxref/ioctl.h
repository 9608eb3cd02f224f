/* daxref's ioctl interface: what a program sends to the daxref daemon
 * through ioctl(2) on a file or directory of a daxref mount.
 *
 * The kernel never forwards FICLONE, FICLONERANGE or FIDEDUPERANGE to a FUSE
 * filesystem, but it does forward "restricted" ioctls, whose argument size is
 * encoded in the command number. These are those: the same operations with
 * the source named by a one-time token instead of a file descriptor (the
 * daemon cannot see the caller's descriptors), plus queries the kernel has no
 * FUSE path for (FIEMAP-like extents, GETFSMAP-like owners, inode paths).
 *
 * Before a clone or dedupe, write back dirty pages of the source (and, for a
 * dedupe, the destination) range, as the kernel does before a remap: the
 * daemon sees only what has reached it.
 *
 * To clone or dedupe, the caller first asks for a token on the SOURCE
 * descriptor (DAXREF_IOC_TOKEN; the descriptor must be open for reading),
 * then passes the token in the request on the DESTINATION descriptor. A
 * token names the source file and handle, is used up by the request that
 * presents it, and expires with the handle or after
 * DAXREF_TOKEN_LIFETIME_SEC seconds.
 *
 * Every structure has a fixed size and layout (natural alignment, no
 * implicit padding); all offsets and lengths are in bytes. This is a stable
 * interface: new operations get new numbers, existing ones never change.
 * docs/ioctl.md describes each call, its checks and its errors.
 */
#ifndef DAXREF_IOCTL_H
#define DAXREF_IOCTL_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define DAXREF_IOC_MAGIC 0xDA
#define DAXREF_TOKEN_LIFETIME_SEC 60

/* A one-time token standing for an open source file. */
struct daxref_token {
	__u64 value[2];
};

/* FICLONE / FICLONERANGE: dest (the descriptor the ioctl is made on) gets
 * the source's bytes [src_offset, src_offset + src_length) at dest_offset,
 * sharing blocks. src_length 0 means "to the source's end of file". */
struct daxref_clone_range {
	struct daxref_token src;
	__u64 src_offset;
	__u64 src_length;
	__u64 dest_offset;
	__u64 flags; /* must be 0 */
};

/* FIDEDUPERANGE for one destination (the descriptor the ioctl is made on).
 * status is FILE_DEDUPE_RANGE_SAME (0), FILE_DEDUPE_RANGE_DIFFERS (1), or a
 * negative errno for this destination; the ioctl itself fails only for
 * errors about the request as a whole. */
struct daxref_dedupe_range {
	struct daxref_token src;
	__u64 src_offset;
	__u64 src_length;
	__u64 dest_offset;
	__u64 bytes_deduped; /* out */
	__s32 status;        /* out */
	__u32 reserved;      /* must be 0 */
};

/* fallocate(FALLOC_FL_UNSHARE_RANGE), which FUSE does not forward: gives the
 * file its own copy of every shared block in the range. Also the argument of
 * DAXREF_IOC_COLLAPSE_RANGE and DAXREF_IOC_INSERT_RANGE, fallocate's
 * FALLOC_FL_COLLAPSE_RANGE and FALLOC_FL_INSERT_RANGE (not forwarded
 * either): whole blocks, the same checks and errors as fallocate(2). */
struct daxref_range {
	__u64 offset;
	__u64 length;
	__u64 flags; /* must be 0 */
};

/* One piece of a file's extent map. */
#define DAXREF_EXTENT_SHARED 0x1 /* the blocks have more than one reference */
#define DAXREF_EXTENT_LAST 0x2   /* the file's last extent */
struct daxref_extent {
	__u64 logical;  /* file offset */
	__u64 physical; /* pool offset */
	__u64 length;
	__u32 flags;    /* DAXREF_EXTENT_* */
	__u32 refcount; /* references to each block of the piece (1: unshared) */
};

/* A file's extents from `start` on, split where sharing changes, like
 * FIEMAP. Call again with start = next while DAXREF_QUERY_MORE is set. */
#define DAXREF_QUERY_MORE 0x1
#define DAXREF_EXTENTS_PER_CALL 400
struct daxref_extent_query {
	__u64 start;  /* in: file offset */
	__u64 length; /* in: bytes to cover (0: to the end of the file) */
	__u64 next;   /* out: where the next call starts */
	__u32 count;  /* out: entries filled */
	__u32 flags;  /* out: DAXREF_QUERY_* */
	struct daxref_extent extents[DAXREF_EXTENTS_PER_CALL];
};

/* One owner of pool blocks: inode `ino` holds pool bytes
 * [physical, physical + length) at file offset `logical`. */
struct daxref_owner {
	__u64 physical;
	__u64 length;
	__u64 ino;
	__u64 logical;
};

/* Owners of pool bytes [physical, physical + length), like GETFSMAP: whole
 * reverse-map records that overlap the range. The caller must be root or the
 * user who mounted the filesystem. To continue, pass back `cursor` (zero it
 * for the first call) while DAXREF_QUERY_MORE is set. */
#define DAXREF_OWNERS_PER_CALL 400
struct daxref_owner_query {
	__u64 physical; /* in */
	__u64 length;   /* in */
	struct daxref_owner cursor; /* in/out: the last owner returned */
	__u32 count;    /* out */
	__u32 flags;    /* in: 0 first call, DAXREF_QUERY_MORE to resume; out */
	struct daxref_owner owners[DAXREF_OWNERS_PER_CALL];
};

/* The paths (from the mount's root) that name inode `ino`, each followed by
 * a NUL, skipping the first `skip` of them. Admin only, as owners. */
#define DAXREF_PATHS_BYTES 16000
struct daxref_paths_query {
	__u64 ino;   /* in */
	__u32 skip;  /* in */
	__u32 count; /* out: paths in buf */
	__u32 flags; /* out: DAXREF_QUERY_MORE if more paths follow */
	__u32 bytes; /* out: bytes of buf used */
	char buf[DAXREF_PATHS_BYTES];
};

/* What the daemon is (lets a tool tell a daxref file from another FUSE
 * filesystem's without side effects). */
#define DAXREF_INFO_MAGIC 0x6461787265664653ULL /* "daxrefFS" */
struct daxref_info {
	__u64 magic;       /* DAXREF_INFO_MAGIC */
	__u32 abi_version; /* 1 */
	__u32 block_size;
	__u64 pool_blocks;
	__u64 free_blocks;
};

/* Where the daemon serving this mount takes lease sessions (direct access,
 * docs/dax.md, <daxref/dax.h>): the absolute path of its SOCK_SEQPACKET
 * socket, NUL-terminated. Anyone may ask; the socket itself admits only root
 * and the pool's owner. */
#define DAXREF_DAX_SOCKET_BYTES 512
struct daxref_dax_info {
	__u64 magic;       /* DAXREF_INFO_MAGIC */
	__u32 abi_version; /* 1 */
	__u32 block_size;
	char socket[DAXREF_DAX_SOCKET_BYTES];
};
#define DAXREF_IOC_INFO _IOR(DAXREF_IOC_MAGIC, 0, struct daxref_info)
#define DAXREF_IOC_TOKEN _IOR(DAXREF_IOC_MAGIC, 1, struct daxref_token)
#define DAXREF_IOC_CLONE_RANGE _IOW(DAXREF_IOC_MAGIC, 2, struct daxref_clone_range)
#define DAXREF_IOC_DEDUPE_RANGE _IOWR(DAXREF_IOC_MAGIC, 3, struct daxref_dedupe_range)
#define DAXREF_IOC_UNSHARE_RANGE _IOW(DAXREF_IOC_MAGIC, 4, struct daxref_range)
#define DAXREF_IOC_EXTENTS _IOWR(DAXREF_IOC_MAGIC, 5, struct daxref_extent_query)
#define DAXREF_IOC_OWNERS _IOWR(DAXREF_IOC_MAGIC, 6, struct daxref_owner_query)
#define DAXREF_IOC_PATHS _IOWR(DAXREF_IOC_MAGIC, 7, struct daxref_paths_query)
#define DAXREF_IOC_COLLAPSE_RANGE _IOW(DAXREF_IOC_MAGIC, 8, struct daxref_range)
#define DAXREF_IOC_INSERT_RANGE _IOW(DAXREF_IOC_MAGIC, 9, struct daxref_range)
#define DAXREF_IOC_DAX_INFO _IOR(DAXREF_IOC_MAGIC, 10, struct daxref_dax_info)

#endif /* DAXREF_IOCTL_H */
