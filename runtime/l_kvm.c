/*
** l_kvm.c - djinn.kvm: whether this host can run a QEMU guest under KVM,
** for the QEMU driver's accel "auto" (lua/djinn/drivers/qemu.lua).
**
**   local kvm = require "djinn.kvm"
**   local ok, why = kvm.usable()   -- true | false, "why not"
**
** A probe with no state: each call opens and closes what it needs.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/kvm.h>

#include <lauxlib.h>
#include <lua.h>

#include "djinn.h"

/*
** kvm.usable() -> true | false, why
**
** Whether QEMU can really run a guest with -accel kvm here. All four must
** hold: /proc/cpuinfo lists the vmx (Intel VT-x) or svm (AMD-V) flag,
** /dev/kvm opens read-write, KVM_GET_API_VERSION is 12 and KVM_CREATE_VM
** succeeds. The CPU flag check is needed because a working /dev/kvm is not
** enough: nested paravirtual hypervisors such as kvm_pvm (Firecracker
** hosts) serve /dev/kvm and create VMs, but run only PVM-aware guest
** kernels; QEMU then starts, does not fail, and hangs in the BIOS with
** "KVM internal error" (docs/testing.md §1).
** Such hosts hide vmx/svm from their guests, so the flag is the tell.
*/
static int l_kvm_usable(lua_State *L)
{
    FILE *f = NULL;
    char line[4096];
    int flags = 0;
    int has_virt = 0;
    int fd = -1;
    int vm = -1;
    int api = 0;
    char why[256];

    why[0] = '\0';
    f = fopen("/proc/cpuinfo", "re");
    if (f == NULL) {
        snprintf(why, sizeof(why), "/proc/cpuinfo: %s", strerror(errno));
        goto done;
    }
    while (!has_virt && fgets(line, sizeof(line), f) != NULL) {
        char *tok = NULL;
        char *save = NULL;
        if (strncmp(line, "flags", 5) != 0)
            continue;
        flags = 1;
        for (tok = strtok_r(line, " \t\n", &save); tok != NULL;
             tok = strtok_r(NULL, " \t\n", &save)) {
            if (strcmp(tok, "vmx") == 0 || strcmp(tok, "svm") == 0) {
                has_virt = 1;
                break;
            }
        }
    }
    fclose(f);
    if (!has_virt) {
        snprintf(why, sizeof(why), "%s",
                 flags ? "the CPU has no vmx or svm flag in /proc/cpuinfo "
                         "(no hardware virtualisation, or a nested "
                         "hypervisor such as kvm_pvm that cannot run "
                         "normal guests)"
                       : "/proc/cpuinfo has no flags line");
        goto done;
    }
    fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, sizeof(why), "/dev/kvm: %s", strerror(errno));
        goto done;
    }
    api = ioctl(fd, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) {
        snprintf(why, sizeof(why),
                 "/dev/kvm: KVM_GET_API_VERSION is %d, expected %d", api,
                 KVM_API_VERSION);
        goto done;
    }
    vm = ioctl(fd, KVM_CREATE_VM, 0);
    if (vm < 0) {
        snprintf(why, sizeof(why), "/dev/kvm: KVM_CREATE_VM failed: %s",
                 strerror(errno));
        goto done;
    }
done:
    if (vm >= 0)
        close(vm);
    if (fd >= 0)
        close(fd);
    if (why[0] != '\0') {
        lua_pushboolean(L, 0);
        lua_pushstring(L, why);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg kvm_funcs[] = {
    {"usable", l_kvm_usable},
    {NULL, NULL},
};

int luaopen_djinn_kvm(lua_State *L)
{
    luaL_newlib(L, kvm_funcs);
    return 1;
}
