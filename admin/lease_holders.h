// Is the process a G record names (meta/lease_record.h) still there, and
// does it still map the pool? Asked where no daemon serves the leases: by
// the daemon's startup revocation (fs/, before it serves anything or reuses
// a block) and by fsck.daxref --repair, which refuses to delete G records
// while a recorded holder could still store into the pool (docs/dax.md,
// "Holders that go away").
//
// A pid alone names nothing for long: a process is the recorded holder
// only if it runs in the same boot (/proc/sys/kernel/random/boot_id) and
// has the recorded start time (field 22 of /proc/PID/stat, clock ticks
// since boot), which no later process with the recycled pid can have.
// Everything read from /proc is validated as input; nothing here asks the
// filesystem anything. Linux only, libc only.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <string_view>

#include "meta/lease_record.h"

namespace daxref {

// The running kernel's boot id, 16 bytes; all zero when it cannot be read
// or is not in the kernel's 8-4-4-4-12 hex form.
std::array<uint8_t, 16> BootId();

// The start time of process pid (field 22 of /proc/PID/stat: clock ticks
// after boot); 0 if there is no such process, it has exited (a zombie, or
// one being reaped), or its stat line does not parse.
uint64_t ProcessStartTime(pid_t pid);

// True when the lease's recorded holder is still alive: the boot is the
// recorded one (a reboot ends every holder; an unreadable boot id is not
// taken as proof of one) and process r.pid exists with start time
// r.start_time.
bool RecordedHolderAlive(const LeaseRecord& r);

// True when process pid maps file (dev, ino) (the pool file's st_dev and
// st_ino), from the device "MM:mm" and inode columns of /proc/PID/maps.
// A process whose mappings cannot be read (EACCES) counts as mapping it:
// the callers must not take an unknown for a no.
bool ProcessMapsFile(pid_t pid, dev_t dev, ino_t ino);

// ---- parsers, exposed for tests ----
// The boot id in its /proc form ("8-4-4-4-12" lowercase or uppercase hex,
// one optional trailing '\n'); false if it is not exactly that.
bool ParseBootId(std::string_view text, std::array<uint8_t, 16>* out);
// Field 22 of a /proc/PID/stat line (the fields after the command's last
// ')'); false if the line does not have it as a decimal number. *state gets
// field 3.
bool ParseStatStartTime(std::string_view line, char* state, uint64_t* start_time);

}  // namespace daxref
