/* The smallest program against an installed sbx:
 *   cc hello.c $(pkg-config --cflags --libs sbx) */
#include <errno.h>
#include <stdio.h>

#include <sbx/sbx.h>

int main(void)
{
    printf("hello from sbx %s\n", sbx_version());
    printf("-ENOENT: %s\n", sbx_strerror(-ENOENT));
    printf("SBX_ERROR_CHANNEL_ERROR: %s\n", sbx_strerror(SBX_ERROR_CHANNEL_ERROR));
    return 0;
}
