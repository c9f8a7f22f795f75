// The GNU build ids of the executable and of every library loaded into it (RenderCache's key),
// through glibc's dl_iterate_phdr.
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// <link.h>'s structures as glibc lays them out on 64-bit targets (Elf64_Phdr, Elf64_Nhdr and the
// first members of struct dl_phdr_info), under names of cairn's own: the Swift toolchain's Glibc
// module owns <link.h> and leaves its structures incomplete here.
_Static_assert(sizeof(void *) == 8, "cairn reads 64-bit ELF program headers");
struct cairn_phdr { uint32_t p_type, p_flags; uint64_t p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align; };
struct cairn_nhdr { uint32_t n_namesz, n_descsz, n_type; };
struct cairn_phdr_info { uint64_t dlpi_addr; const char *dlpi_name; const struct cairn_phdr *dlpi_phdr; uint16_t dlpi_phnum; };
extern int cairn_dl_iterate_phdr(int (*callback)(struct cairn_phdr_info *, size_t, void *), void *data) __asm__("dl_iterate_phdr");
#define CAIRN_PT_NOTE 4
#define CAIRN_NT_GNU_BUILD_ID 3

struct cairn_build_ids {
    unsigned char *out;
    size_t size;
    size_t used;
    int missing;
};

// As glibc reads notes: the descriptor at round_up(12 + namesz, align) from the note's start,
// the next note at round_up(descriptor + descsz, align); nothing read past `count`.
static inline const unsigned char *cairn_note_build_id(const unsigned char *notes, size_t count, size_t align, size_t *length) {
    size_t offset = 0;
    while (offset <= count && count - offset >= 12) {
        const struct cairn_nhdr *note = (const struct cairn_nhdr *)(notes + offset);
        if (note->n_namesz > count || note->n_descsz > count) return 0;
        size_t name = offset + 12;
        size_t desc = offset + (12 + note->n_namesz + align - 1) / align * align;
        if (desc > count || note->n_descsz > count - desc) return 0;
        if (note->n_type == CAIRN_NT_GNU_BUILD_ID && note->n_namesz == 4 && memcmp(notes + name, "GNU", 4) == 0 && note->n_descsz > 0) {
            *length = note->n_descsz;
            return notes + desc;
        }
        offset = (desc + note->n_descsz + align - 1) / align * align;
    }
    return 0;
}

static inline int cairn_build_id_of(struct cairn_phdr_info *info, size_t info_size, void *data) {
    (void)info_size;
    struct cairn_build_ids *ids = data;
    const unsigned char *id = 0;
    size_t length = 0;
    for (int i = 0; i < info->dlpi_phnum && !id; i++) {
        const struct cairn_phdr *ph = &info->dlpi_phdr[i];
        if (ph->p_type != CAIRN_PT_NOTE) continue;
        id = cairn_note_build_id((const unsigned char *)(info->dlpi_addr + ph->p_vaddr), ph->p_memsz, ph->p_align == 8 ? 8 : 4, &length);
    }
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (!id) {
        if (!strstr(name, "vdso")) ids->missing = 1;
        return 0;
    }
    size_t n = strlen(name);
    size_t need = n + 1 + 4 + length;
    if (ids->used + need <= ids->size) {
        unsigned char *p = ids->out + ids->used;
        memcpy(p, name, n + 1);
        p += n + 1;
        p[0] = length & 0xff; p[1] = (length >> 8) & 0xff; p[2] = (length >> 16) & 0xff; p[3] = (length >> 24) & 0xff;
        memcpy(p + 4, id, length);
    }
    ids->used += need;
    return 0;
}

// Writes each loaded object's name (NUL-terminated), its build id's length (4 bytes, little
// endian) and the id into out; returns the bytes that takes (more than size: call again with
// more room), or -1 when an object other than the vDSO has no build id.
static inline long cairn_build_ids(unsigned char *out, size_t size) {
    struct cairn_build_ids ids = { out, size, 0, 0 };
    cairn_dl_iterate_phdr(cairn_build_id_of, &ids);
    return ids.missing ? -1 : (long)ids.used;
}
