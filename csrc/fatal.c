/* fatal.c - the fatal record both vendor machines keep: how the guest died
 * (terminated, panicked, hung), the first event winning. */
#include <string.h>

#include "ua_internal.h"

void ua_fatal_slot_init(struct ua_fatal_slot *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
}

void ua_fatal_slot_fini(struct ua_fatal_slot *s) { pthread_mutex_destroy(&s->lock); }

int ua_fatal_status(uint32_t kind)
{
    switch (kind) {
    case UA_FATAL_TERMINATED: return UA_E_GUEST_TERMINATED;
    case UA_FATAL_PANIC: return UA_E_GUEST_PANIC;
    case UA_FATAL_HUNG: return UA_E_GUEST_HUNG;
    default: return UA_OK;
    }
}

int ua_fatal_record(struct ua_fatal_slot *s, const ua_fatal *f)
{
    pthread_mutex_lock(&s->lock);
    if (!s->dead) {
        s->f = *f;
        s->f.message[sizeof(s->f.message) - 1] = '\0';
        __atomic_store_n(&s->dead, 1, __ATOMIC_RELEASE);
    }
    uint32_t kind = s->f.kind; /* the first death, which the record holds */
    pthread_mutex_unlock(&s->lock);
    return ua_fatal_status(kind);
}

int ua_fatal_raise(struct ua_fatal_slot *s, uint32_t kind, uint32_t vcpu, uint64_t gpa,
                   uint64_t code, const char *message)
{
    ua_fatal f;
    memset(&f, 0, sizeof(f));
    f.kind = kind;
    f.vcpu = vcpu;
    f.gpa = gpa;
    f.code = code;
    if (message)
        strncpy(f.message, message, sizeof(f.message) - 1);
    return ua_fatal_record(s, &f);
}

void ua_fatal_read(const struct ua_fatal_slot *s, ua_fatal *out)
{
    pthread_mutex_lock((pthread_mutex_t *)&s->lock);
    *out = s->f;
    pthread_mutex_unlock((pthread_mutex_t *)&s->lock);
}

void ua_fatal_reset(struct ua_fatal_slot *s)
{
    pthread_mutex_lock(&s->lock);
    memset(&s->f, 0, sizeof(s->f));
    __atomic_store_n(&s->dead, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&s->lock);
}
