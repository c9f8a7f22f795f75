#include <zlib.h>

// deflateInit2 and inflateInit2 are macros, which Swift cannot call: typed wrappers.
// Raw deflate with an 8 KB window (PackedJSON.window) and a small hash table: the objects are
// 1-5 KB. Inflate takes the largest window, which reads any smaller one.
static inline int cairn_deflate_init_raw(z_stream *strm, int level) {
    return deflateInit2(strm, level, Z_DEFLATED, -13, 5, Z_DEFAULT_STRATEGY);
}

static inline int cairn_inflate_init_raw(z_stream *strm) {
    return inflateInit2(strm, -15);
}
