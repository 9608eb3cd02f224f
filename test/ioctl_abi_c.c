/* The ioctl ABI checks of ioctl_abi.h, compiled as C: a C program sees the
 * same sizes, offsets and command numbers as the daemon's C++. The checks
 * are all at compile time; the program only says so. */
#include <stdio.h>

#include "test/ioctl_abi.h"

int main(void) {
  printf("daxref ioctl ABI: C layout as documented\n");
  return 0;
}
