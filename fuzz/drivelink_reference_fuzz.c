/* libFuzzer target for the C99 firmware reference: the device's whole receive path. */
#include "drivelink.h"

#include <stddef.h>
#include <stdint.h>

static dl_device dev;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint8_t out[4 * DL_MAX_WIRE];
    uint8_t scratch[DL_MAX_FRAME];
    dl_frame f;
    if (!ready) {
        dl_device_init(&dev, 6, 20000, "fuzz");
        ready = 1;
    }
    (void)dl_decode(data, size, scratch, sizeof scratch, &f);
    (void)dl_device_receive(&dev, data, size, (uint32_t)size * 7u, out, sizeof out);
    (void)dl_device_poll(&dev, (uint32_t)size * 13u, out, sizeof out);
    return 0;
}
