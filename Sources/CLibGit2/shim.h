#include <git2.h>

// git_libgit2_opts is variadic, which Swift cannot call: one typed wrapper per option cairn sets.
static inline int cairn_git_set_ssl_cert_locations(const char *file, const char *path) {
    return git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, file, path);
}

#include <git2/sys/stream.h>
#include <mbedtls/asn1.h>
#include <mbedtls/x509_crt.h>
#include <string.h>

// libgit2 1.5 on Debian's mbedTLS 2.28 checks a server certificate's name against its DNS names
// only, so a remote by IP address never verifies, even when the certificate lists the address
// (subjectAltName IP, which the git CLI accepts). This checks the certificate libgit2 was given
// the way libgit2 does, less the name (chain to a CA of ca_file, validity, usage), then looks
// for the address among its iPAddress names. 0: valid for the address; 1: the chain does not
// verify (flags_out says why); 2: the address is not among its names; negative: unreadable
// certificate (-1) or CA file (-2).
static inline int cairn_verify_certificate_for_address(const unsigned char *der, size_t der_len, const char *ca_file,
                                                       const unsigned char *address, size_t address_len, uint32_t *flags_out) {
    mbedtls_x509_crt crt, ca;
    mbedtls_x509_crt_init(&crt);
    mbedtls_x509_crt_init(&ca);
    uint32_t flags = 0;
    int result;
    if (mbedtls_x509_crt_parse_der(&crt, der, der_len) != 0) {
        result = -1;
    } else if (mbedtls_x509_crt_parse_file(&ca, ca_file) < 0 || ca.version == 0) {
        result = -2;
    } else if (mbedtls_x509_crt_verify(&crt, &ca, NULL, NULL, &flags, NULL, NULL) != 0) {
        result = 1;
    } else {
        result = 2;
        for (const mbedtls_x509_sequence *san = &crt.subject_alt_names; san != NULL; san = san->next) {
            if (san->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && san->buf.p != NULL && san->buf.len == address_len
                && memcmp(san->buf.p, address, address_len) == 0) {
                result = 0;
                break;
            }
        }
    }
    if (flags_out) *flags_out = flags;
    mbedtls_x509_crt_free(&crt);
    mbedtls_x509_crt_free(&ca);
    return result;
}

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
