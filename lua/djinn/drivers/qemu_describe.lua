-- The qemu driver's declaration (shape: lua/djinn/drivers/describe.lua).
return {
    type = "qemu",
    doc = "run a build in a QEMU virtual machine booted from a QCOW2 " ..
          "image, over SSH",
    manifest_keys = {
        { name = "type", doc = "qemu" },
        { name = "image", required = true,
          doc = "a registered image name or a base image under disks" },
        { name = "arch",
          doc = "only x86_64 (as Djinn, arch is forced to x86_64; any " ..
                "other value draws a warning)" },
    },
    conf_keys = {
        hold = { type = "duration",
                 doc = "run --hold's default: when a job fails, keep the machine " ..
                       "this long for a look inside (0: never)" },
        disks = { type = "string", default = "/var/lib/djinn/images",
                  doc = "base images: <disks>/qemu/x86_64/<name>" },
        cpus = { type = "int", default = 1, doc = "-smp" },
        memory = { type = "int", default = 2048, doc = "-m, in MiB" },
        accel = { type = "string", default = "auto",
                  doc = "kvm | tcg | auto: KVM only when it really works " ..
                        "(djinn.kvm: kvm.usable), else TCG" },
        boot_timeout = { type = "duration", default = 300,
                         doc = "how long to wait for the guest's SSH" },
        restrict = { type = "bool", default = false,
                     doc = "true: slirp restrict=on (the guest reaches " ..
                           "nothing but its SSH forward)" },
        lock_root = { type = "bool", default = true,
                      doc = "after the first login, give root a per-build " ..
                            "key and end the empty-password login" },
        refuse_unusable = { type = "bool", default = true,
                            doc = "refuse to boot an image whose last " ..
                                  "boot check (image check --boot) said " ..
                                  "unusable; false: a warning, then boot" },
        binary = { type = "string", default = "qemu-system-x86_64",
                   doc = "the QEMU program" },
        warm = { type = "bool", default = true,
                 doc = "start builds from a warm snapshot of the booted " ..
                       "image (made by the first build of an image and " ..
                       "machine shape); false: every build boots cold" },
        warm_max = { type = "size", default = 8 * 1024 * 1024 * 1024,
                     doc = "the warm snapshots' total size per cache " ..
                           "directory; the least recently used are " ..
                           "removed first" },
        warm_skip = { type = "array",
                      doc = "images never snapshotted (names as the " ..
                            "manifest writes them), e.g. a guest whose " ..
                            "SSH server must not be cloned" },
        arch = { type = "string",
                 doc = "in Djinn's config struct; not read (qemu runs " ..
                       "x86_64)" },
        image = { type = "string",
                  doc = "in Djinn's config struct; not read (the " ..
                        "manifest's driver.image names the image)" },
    },
    defaults = { disks = "/var/lib/djinn/images", cpus = 1, memory = 2048 },
    reap = { processes = { "qemu" }, docker = {} },
}
