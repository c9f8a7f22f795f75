#include <git2.h>

// git_libgit2_opts is variadic, which Swift cannot call: one typed wrapper per option cairn sets.
static inline int cairn_git_set_ssl_cert_locations(const char *file, const char *path) {
    return git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, file, path);
}

#include <git2/sys/stream.h>

// cairn's socket stream (GitStore/SocketStream.swift), registered as libgit2's standard stream so
// that a stalled network operation can be stopped by shutting its socket down. The first fields
// have the layout of libgit2 1.5's own git_socket_stream: its ssh transport reads `s` from any
// standard stream to hand the socket to libssh2.
typedef struct {
    git_stream parent;
    char *host;
    char *port;
    int s;
    void *session;
} cairn_socket_stream;
