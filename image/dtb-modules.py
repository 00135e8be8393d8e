#!/usr/bin/python3
"""Which kernel modules the Raspberry Pi 4's root devices need, from its device tree.

    dtb-modules.py --dtb DTB --modules DIR --kernel VMLINUZ --list
    dtb-modules.py --dtb DTB --modules DIR --kernel VMLINUZ --check INITRD
    dtb-modules.py --dtb DTB --modules DIR --kernel VMLINUZ --check-modules FILE

DIR is lib/modules/KVER after depmod (modules.alias, modules.dep,
modules.builtin, modules.builtin.modinfo); VMLINUZ is the kernel the firmware
boots (gzip, an EFI zboot image or a plain arm64 Image).

A device on the Pi 4 probes only when every device it depends on has probed:
the SD controller (emmc2) needs its two regulators, they need the firmware's
GPIO expander, which needs the firmware, which needs the mailbox... Linux
defers a probe whose supplier has no driver yet, for ever if that driver is
a module left out of the initramfs: the boot ends at "Gave up waiting for
root". A hand list of modules cannot see that chain; this walks it.

From each root device (the SD controller; for USB boot the VL805 xHCI behind
the PCIe bridge, and the USB mass-storage and SCSI disk drivers above it) it
follows every reference the kernel waits for -- parent buses, *-supply,
clocks, resets, interrupt parents (inherited, interrupts-extended,
interrupt-map), GPIOs, power domains, DMA channels, mailboxes, PHYs, MSI
parents, pin control, firmware -- and decides for each node how it is
driven: a module whose modules.alias pattern matches the node's modalias
(that module must be in the initramfs), a built-in driver, or a driver the
kernel registers from an OF_DECLARE table (see compatible_in_kernel()).

--list prints the modules for initramfs-tools' /etc/initramfs-tools/modules.
--check reads an initrd (newc cpio, gzip/xz/zstd/plain, early cpio archives
concatenated in front) and fails, naming each missing module and the
dependency path that needs it, unless every module is in it or built in.
--check-modules does the same for a list of module names, expanded through
modules.dep as initramfs-tools would copy them.

Run it with /usr/bin/python3: it needs Debian's python3-libfdt.
"""

import argparse
import fnmatch
import gzip
import lzma
import os
import re
import shutil
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field

try:
    import libfdt
except ImportError:
    sys.exit(
        "dtb-modules.py: cannot import libfdt: install Debian's python3-libfdt "
        "and run this with /usr/bin/python3 (a pyenv or venv python does not see it)"
    )

# Root and boot file systems (the root is squashfs; erofs is kept so that the
# root can move to it without a new initramfs list; vfat and its code pages
# mount the boot partition).
FILESYSTEM_MODULES = ["squashfs", "erofs", "vfat", "nls_cp437", "nls_ascii"]

# QEMU's -M virt machine, where the boot tests run, has no DTB here (QEMU
# makes one at run time), so nothing can be walked for it: its disk is
# virtio-blk on virtio-pci or virtio-mmio. These three are for the test
# machine only; a Pi never loads them.
QEMU_VIRT_MODULES = ["virtio_pci", "virtio_blk", "virtio_mmio"]

# The file system the root slot holds (cmdline.txt: rootfstype=squashfs).
ROOT_FILESYSTEM = "squashfs"

# PCI devices the Pi 4B's DTB describes without saying what they are. The
# VL805 USB 3 controller behind the PCIe bridge appears as usb@0,0 only so
# that its reset (the firmware loads the VL805's firmware through it) can be
# attached; whatever the DT says, its driver is chosen by the IDs the chip
# reports: VIA 1106:3483 (subsystem 1106:3483 too), class 0c0330 (xHCI).
KNOWN_PCI_DEVICES = {
    (0x1106, 0x3483): ("VIA VL805 USB 3 xHCI", 0x1106, 0x3483, 0x0C0330),
}

# The devices above a USB disk: the USB core binds the disk's interface by
# its class, subclass and protocol (mass storage 08, SCSI 06; bulk-only 50,
# UAS 62), and the SCSI disk by its type (0: direct access). Vendor and
# product are zero, so only the generic drivers match, not the per-vendor
# ums-* quirk drivers.
USB_DISK_CHAIN = [
    ("USB disk, bulk-only interface", "usb:v0000p0000d0000dc00dsc00dp00ic08isc06ip50in00"),
    ("USB disk, UAS interface", "usb:v0000p0000d0000dc00dsc00dp00ic08isc06ip62in00"),
    ("SCSI disk on it", "scsi:t-0x00"),
]
# The card in the SD slot: the MMC core binds it to the block driver.
SD_CARD_CHAIN = [("SD card's block device", "mmc:block")]


class Failure(Exception):
    """Something this tool cannot work with; the message says what to do."""


# --- the device tree ---------------------------------------------------------


@dataclass(eq=False)
class Node:
    path: str
    name: str
    props: dict
    parent: "Node | None"
    label: str = ""
    children: list = field(default_factory=list)

    def u32(self, prop, default=None):
        value = self.props.get(prop)
        if value is None:
            return default
        if len(value) != 4:
            raise Failure(f"{self.path}: {prop} is {len(value)} bytes, not one cell")
        return int.from_bytes(value, "big")

    def cells(self, prop):
        value = self.props.get(prop, b"")
        if len(value) % 4:
            raise Failure(f"{self.path}: {prop} is not a list of cells ({len(value)} bytes)")
        return [int.from_bytes(value[i : i + 4], "big") for i in range(0, len(value), 4)]

    def strings(self, prop):
        value = self.props.get(prop)
        if not value:
            return []
        return [s.decode("utf-8", "replace") for s in value.rstrip(b"\0").split(b"\0")]

    @property
    def compatible(self):
        return self.strings("compatible")

    @property
    def available(self):
        # of_device_is_available(): no status, "okay" or "ok".
        status = self.strings("status")
        return not status or status[0] in ("okay", "ok")

    def display(self):
        # "sd_vcc_reg: regulator-sd-vcc (regulator-fixed)": the label as in
        # the .dts source, the node name, the first compatible.
        what = f" ({self.compatible[0]})" if self.compatible else ""
        label = f"{self.label}: " if self.label and self.label != self.name else ""
        return f"{label}{self.name or '/'}{what}"


class DeviceTree:
    def __init__(self, path):
        try:
            with open(path, "rb") as f:
                self.fdt = libfdt.Fdt(f.read())
        except (OSError, libfdt.FdtException) as e:
            raise Failure(f"cannot read the device tree {path}: {e}") from e
        self.by_path = {}
        self.by_phandle = {}
        self.root = self._load(0, None, "/")
        symbols = self.by_path.get("/__symbols__")
        if symbols:
            # dtc -@ keeps the source's labels here (Debian builds its DTBs so).
            for label, value in symbols.props.items():
                node = self.by_path.get(value.rstrip(b"\0").decode())
                if node and not node.label:
                    node.label = label

    def _load(self, offset, parent, path):
        props = {}
        poff = self.fdt.first_property_offset(offset, [libfdt.FDT_ERR_NOTFOUND])
        while poff >= 0:
            prop = self.fdt.get_property_by_offset(poff)
            props[prop.name] = bytes(prop)
            poff = self.fdt.next_property_offset(poff, [libfdt.FDT_ERR_NOTFOUND])
        name = self.fdt.get_name(offset) if parent else ""
        node = Node(path=path, name=name, props=props, parent=parent)
        self.by_path[path] = node
        for key in ("phandle", "linux,phandle"):
            if key in props:
                self.by_phandle[node.u32(key)] = node
        child = self.fdt.first_subnode(offset, [libfdt.FDT_ERR_NOTFOUND])
        while child >= 0:
            cname = self.fdt.get_name(child)
            node.children.append(self._load(child, node, path.rstrip("/") + "/" + cname))
            child = self.fdt.next_subnode(child, [libfdt.FDT_ERR_NOTFOUND])
        return node

    def nodes(self):
        return self.by_path.values()

    def phandle(self, node, prop, value):
        target = self.by_phandle.get(value)
        if target is None:
            raise Failure(f"{node.path}: {prop} refers to phandle {value:#x}, which no node has")
        return target


def of_modalias(node):
    # drivers/of/module.c, of_modalias(): the name without the unit address, the
    # device_type or "(null)" when there is none (a NULL printed by %s), then
    # each compatible, with spaces turned into underscores.
    name = node.name.split("@")[0]
    dtype = node.strings("device_type")
    alias = f"of:N{name}T{dtype[0] if dtype else '(null)'}"
    for compat in node.compatible:
        alias += "C" + compat.replace(" ", "_")
    return alias


# Properties that are a list of (phandle, args...) entries whose argument
# count the referenced node gives in the named cells property, and what the
# count is when that property is missing (None: the kernel refuses the entry).
PHANDLE_ARGS = {
    "clocks": ("#clock-cells", None),
    "assigned-clocks": ("#clock-cells", None),
    "assigned-clock-parents": ("#clock-cells", None),
    "resets": ("#reset-cells", None),
    "power-domains": ("#power-domain-cells", None),
    "dmas": ("#dma-cells", None),
    "mboxes": ("#mbox-cells", None),
    "phys": ("#phy-cells", None),
    "iommus": ("#iommu-cells", None),
    "msi-parent": ("#msi-cells", 0),
    "interrupts-extended": ("#interrupt-cells", None),
}
NOT_GPIO_REFERENCES = {"gpio-controller", "gpio-line-names", "gpio-ranges", "gpio-reserved-ranges", "ngpios"}


def is_gpio_property(name):
    if name in NOT_GPIO_REFERENCES:
        return False
    return name in ("gpio", "gpios") or name.endswith("-gpios") or name.endswith("-gpio")


def phandle_args(tree, node, prop, cells_name, default):
    values = node.cells(prop)
    i = 0
    while i < len(values):
        if values[i] == 0:  # an empty entry (allowed in gpio lists)
            i += 1
            continue
        target = tree.phandle(node, prop, values[i])
        count = target.u32(cells_name, default)
        if count is None:
            raise Failure(f"{node.path}: {prop} refers to {target.path}, which has no {cells_name}")
        yield target
        i += 1 + count


def interrupt_parent(tree, node):
    # of_irq_find_parent(): the node's interrupt-parent, or else its parent's,
    # until a node that has #interrupt-cells.
    child = node
    while True:
        if "interrupt-parent" in child.props:
            parent = tree.phandle(child, "interrupt-parent", child.u32("interrupt-parent"))
        else:
            parent = child.parent
        if parent is None:
            return None, None
        if "#interrupt-cells" in parent.props:
            return parent, child
        child = parent


def interrupt_map_parents(tree, node):
    # of_irq_parse_raw(): each entry is the child unit address (#address-cells
    # of the nexus, 2 when absent) and specifier (#interrupt-cells), then the
    # parent's phandle, its unit address (#address-cells, 0 when absent) and
    # its specifier (#interrupt-cells).
    values = node.cells("interrupt-map")
    child_cells = node.u32("#address-cells", 2) + node.u32("#interrupt-cells", 0)
    i = 0
    while i < len(values):
        i += child_cells
        if i >= len(values):
            raise Failure(f"{node.path}: interrupt-map ends in the middle of an entry")
        parent = tree.phandle(node, "interrupt-map", values[i])
        icells = parent.u32("#interrupt-cells")
        if icells is None:
            raise Failure(f"{node.path}: interrupt-map names {parent.path}, which has no #interrupt-cells")
        yield parent
        i += 1 + parent.u32("#address-cells", 0) + icells


def dependencies(tree, node):
    """(what, node) for every node this one cannot probe without."""
    if node.parent is not None and node.parent.parent is not None:
        yield "parent bus", node.parent
    for prop in sorted(node.props):
        if prop.endswith("-supply"):
            yield prop, tree.phandle(node, prop, node.u32(prop))
        elif prop in PHANDLE_ARGS:
            for target in phandle_args(tree, node, prop, *PHANDLE_ARGS[prop]):
                yield prop, target
        elif is_gpio_property(prop):
            for target in phandle_args(tree, node, prop, "#gpio-cells", None):
                yield prop, target
        elif re.fullmatch(r"pinctrl-[0-9]+", prop):
            for value in node.cells(prop):
                yield prop, tree.phandle(node, prop, value)
        elif prop in ("firmware", "raspberrypi,firmware"):
            yield prop, tree.phandle(node, prop, node.u32(prop))
        elif prop == "interrupt-map":
            for target in interrupt_map_parents(tree, node):
                yield prop, target
    if "interrupts" in node.props and "interrupts-extended" not in node.props:
        parent, holder = interrupt_parent(tree, node)
        if parent is not None:
            how = "interrupt-parent" if holder is node else f"interrupt-parent (inherited from {holder.name or '/'})"
            yield how, parent


# --- the kernel --------------------------------------------------------------


def module_name(path):
    """kernel/drivers/regulator/gpio-regulator.ko.xz -> gpio_regulator (kmod's form)."""
    base = os.path.basename(path)
    base = re.sub(r"\.ko(\.(xz|zst|gz))?$", "", base)
    return base.replace("-", "_")


def glob_match(name, pattern):
    """fnmatch(3) without flags, as kmod matches aliases. Nearly every alias
    uses only "*", which is matched here directly: compiling thirty thousand
    patterns into regular expressions takes seconds."""
    if "?" in pattern or "[" in pattern or "\\" in pattern:
        return fnmatch.fnmatchcase(name, pattern)
    parts = pattern.split("*")
    if len(parts) == 1:
        return name == pattern
    first, last = parts[0], parts[-1]
    if not name.startswith(first) or not name.endswith(last) or len(name) < len(first) + len(last):
        return False
    pos, end = len(first), len(name) - len(last)
    for part in parts[1:-1]:
        found = name.find(part, pos, end)
        if found < 0:
            return False
        pos = found + len(part)
    return True


def read_kernel_image(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise Failure(f"cannot read the kernel {path}: {e}") from e
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:2] == b"MZ" and data[4:8] == b"zimg":
        # An EFI zboot image: the compressed Image at the offset and size the
        # header gives, with the compression named at byte 24.
        start = int.from_bytes(data[8:12], "little")
        size = int.from_bytes(data[12:16], "little")
        comp = data[24:32].rstrip(b"\0").decode("ascii", "replace")
        payload = data[start : start + size]
        if comp == "gzip":
            return gzip.decompress(payload)
        if comp in ("xzkern", "xz", "lzma"):
            return lzma.decompress(payload)
        return run_decompressor(comp, payload, path)
    if data[56:60] == b"ARM\x64":
        return data
    raise Failure(f"{path} is neither gzip, an EFI zboot image nor an arm64 Image: is it the kernel?")


def run_decompressor(comp, payload, what):
    tool = {"zstd": "zstd", "zstd22": "zstd", "lz4": "lz4", "lzo": "lzop", "bzip2": "bzip2"}.get(comp)
    if tool is None or shutil.which(tool) is None:
        raise Failure(f"{what} is compressed with {comp}: install {tool or comp} to read it")
    return subprocess.run([tool, "-dc"], input=payload, stdout=subprocess.PIPE, check=True).stdout


class Kernel:
    def __init__(self, moddir, image):
        self.dir = moddir
        self.version = os.path.basename(os.path.normpath(moddir))
        for f in ("modules.alias", "modules.dep", "modules.builtin", "modules.builtin.modinfo"):
            if not os.path.isfile(os.path.join(moddir, f)):
                raise Failure(f"{moddir} has no {f}: give lib/modules/KVER after depmod (depmod -b ROOT KVER)")
        self.paths = {}  # module -> path in modules.dep
        self.deps = {}  # module -> modules it needs
        with open(os.path.join(moddir, "modules.dep")) as f:
            for line in f:
                path, _, needs = line.partition(":")
                name = module_name(path)
                self.paths[name] = path
                self.deps[name] = [module_name(p) for p in needs.split()]
        self.aliases = []  # (pattern, module)
        with open(os.path.join(moddir, "modules.alias")) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[0] == "alias":
                    self.aliases.append((parts[1], parts[2].replace("-", "_")))
        # Thirty thousand patterns: only those of the modalias's bus ("of",
        # "pci", ...) and those whose bus part is itself a pattern can match.
        self.aliases_by_bus = {}
        for pattern, mod in self.aliases:
            bus = pattern.split(":", 1)[0] if ":" in pattern else ""
            if any(c in bus for c in "*?["):
                bus = "*"
            self.aliases_by_bus.setdefault(bus, []).append((pattern, mod))
        with open(os.path.join(moddir, "modules.builtin")) as f:
            self.builtin = {module_name(line.strip()) for line in f if line.strip()}
        self.builtin_aliases = []
        with open(os.path.join(moddir, "modules.builtin.modinfo"), "rb") as f:
            for entry in f.read().split(b"\0"):
                key, _, value = entry.decode("utf-8", "replace").partition("=")
                mod, _, what = key.partition(".")
                if what == "alias" and value:
                    self.builtin_aliases.append((value, mod.replace("-", "_")))
        self.image = read_kernel_image(image)

    def known(self, name):
        name = name.replace("-", "_")
        return name in self.paths or name in self.builtin

    def display(self, mod):
        """The module's file name, and its platform driver name when that differs
        (the fixed regulator's module is fixed.ko, its driver reg-fixed-voltage)."""
        shown = os.path.basename(re.sub(r"\.ko(\.(xz|zst|gz))?$", "", self.paths.get(mod, mod)))
        others = sorted(
            {p[len("platform:"):] for p, m in self.aliases if m == mod and p.startswith("platform:") and "*" not in p}
            - {shown, shown.replace("_", "-"), shown.replace("-", "_")}
        )
        return f"{shown} ({', '.join(others)})" if others else shown

    def modules_matching(self, modalias):
        # kmod matches each alias as an fnmatch(3) pattern, case-sensitive;
        # udev then loads every module that matched.
        bus = modalias.split(":", 1)[0]
        candidates = self.aliases_by_bus.get(bus, []) + self.aliases_by_bus.get("*", [])
        return sorted({m for p, m in candidates if glob_match(modalias, p)})

    def builtin_matching(self, modalias):
        return sorted({m for p, m in self.builtin_aliases if glob_match(modalias, p)})

    def compatible_in_kernel(self, compat):
        # Built-in drivers leave no "of:" aliases in modules.builtin.modinfo
        # (6.12 lists none), and drivers registered through OF_DECLARE tables
        # (CLK_OF_DECLARE, IRQCHIP_DECLARE, TIMER_OF_DECLARE) have no alias at
        # all: they are found by the compatible strings in the kernel's own
        # of_device_id tables. Each such entry is a NUL-padded char[128]
        # after a zeroed type[32], so the string appears NUL on both sides.
        # Sound enough because it is only asked when no module matches the
        # node: a driver that is a module always has an alias, so a driver
        # that exists and has no alias is built in. It can be wrong when the
        # string is in the kernel for another reason -- a quirk table, an
        # of_machine_is_compatible() test, a driver that matches the node
        # but needs something else to bind -- and then it says "built in"
        # for a node nothing drives; a boot on the hardware is the check of
        # that.
        return (b"\0" + compat.encode() + b"\0") in self.image

    def closure(self, modules):
        """The modules and everything modules.dep says they need, as modprobe loads them."""
        seen = set()
        todo = list(modules)
        while todo:
            mod = todo.pop()
            if mod in seen:
                continue
            seen.add(mod)
            todo.extend(self.deps.get(mod, []))
        return seen


# --- the walk ----------------------------------------------------------------


@dataclass
class Driven:
    """How one device is driven: modules it needs, or why it needs none."""

    modules: list
    how: str  # for the report when no module is needed
    ok: bool = True  # False: nothing in this kernel drives it


def pci_modalias(vendor, device):
    """(description, modalias) of a PCI function, from KNOWN_PCI_DEVICES."""
    if (vendor, device) not in KNOWN_PCI_DEVICES:
        raise Failure(
            f"PCI device {vendor:04x}:{device:04x} has no class in KNOWN_PCI_DEVICES "
            "(image/dtb-modules.py): add its subsystem IDs and class from lspci -nnv"
        )
    what, sv, sd, cls = KNOWN_PCI_DEVICES[(vendor, device)]
    return what, (
        f"pci:v{vendor:08X}d{device:08X}sv{sv:08X}sd{sd:08X}"
        f"bc{cls >> 16:02X}sc{(cls >> 8) & 0xFF:02X}i{cls & 0xFF:02X}"
    )


def pci_ids(node):
    """(description, modalias) of a PCI function whose compatible names it, or None."""
    for compat in node.compatible:
        m = re.fullmatch(r"pci([0-9a-f]{1,4}),([0-9a-f]{1,4})", compat)
        if m:
            return pci_modalias(int(m.group(1), 16), int(m.group(2), 16))
    return None


def on_pci_bus(node):
    parent = node.parent
    return parent is not None and parent.strings("device_type") == ["pci"]


def driven_by_modalias(kernel, modalias):
    mods = kernel.modules_matching(modalias)
    if mods:
        return Driven(mods, "")
    builtins = kernel.builtin_matching(modalias)
    if builtins:
        return Driven([], f"built in ({', '.join(builtins)})")
    return Driven([], f"no module or built-in driver matches {modalias}", ok=False)


def driven(kernel, node, pci_modalias=None):
    if pci_modalias is not None:
        return driven_by_modalias(kernel, pci_modalias)
    if not node.compatible:
        if node.strings("device_type") == ["pci"]:
            return Driven([], "PCI bridge: enumerated by the PCI core")
        return Driven([], "no compatible: no driver binds to this node itself")
    modalias = of_modalias(node)
    mods = kernel.modules_matching(modalias)
    if mods:
        return Driven(mods, "")
    builtins = kernel.builtin_matching(modalias)
    if builtins:
        return Driven([], f"built in ({', '.join(builtins)})")
    found = [c for c in node.compatible if kernel.compatible_in_kernel(c)]
    if found:
        return Driven([], f"built in (\"{found[0]}\" is in the kernel image)")
    return Driven([], f"no driver in this kernel: no module alias matches {modalias} "
                      "and no compatible is in the kernel image", ok=False)


@dataclass
class Step:
    """One device the root device needs, and how it was reached."""

    label: str  # as printed
    chain: list  # labels from the root device to here
    driven: Driven
    node: "Node | None" = None


@dataclass
class Walk:
    root: str
    steps: list
    disabled: list  # (chain, node) skipped because the kernel skips them
    problems: list  # device-tree problems that stop the root device for good


def find_compatible(tree, compat):
    found = [n for n in tree.nodes() if compat in n.compatible]
    if not found:
        raise Failure(f"the device tree has no node compatible with {compat}: is it a Raspberry Pi 4 DTB?")
    return found[0]


def walk(tree, kernel, name, start, pci_modalias=None, above=()):
    steps, disabled, problems = [], [], []
    seen = {start}
    queue = deque([(start, [start.display()])])
    while queue:
        node, chain = queue.popleft()
        if not node.available:
            # The kernel creates no device for a disabled node, and
            # fw_devlink makes no link to it (of_link_to_phandle), so a
            # consumer is not held back by it; whether the consumer works
            # without it is that driver's business (bcm2711's clock
            # controller lists the disabled DSI blocks as optional parents).
            # A disabled root device or parent bus, though, means the root
            # device never appears.
            if node is start or chain[-2] == "parent bus":
                problems.append(" → ".join(chain) + ": disabled (status = \"disabled\"): the kernel never creates it")
            else:
                disabled.append(" → ".join(chain))
            continue
        pci = pci_modalias if node is start else None
        if pci is None and on_pci_bus(node) and not node.strings("device_type") == ["pci"]:
            ids = pci_ids(node)
            pci = ids[1] if ids else None
        steps.append(Step(node.display(), chain, driven(kernel, node, pci), node))
        for what, target in dependencies(tree, node):
            if target not in seen and target.parent is not None:
                seen.add(target)
                queue.append((target, chain + [what, target.display()]))
    for label, modalias in above:
        steps.append(Step(label, [start.display(), label + f" [{modalias}]"], driven_by_modalias(kernel, modalias)))
    return Walk(name, steps, disabled, problems)


def walks(tree, kernel):
    emmc2 = find_compatible(tree, "brcm,bcm2711-emmc2")
    result = [walk(tree, kernel, "SD card: the Pi's SD controller (emmc2)", emmc2, above=SD_CARD_CHAIN)]
    pcie = find_compatible(tree, "brcm,bcm2711-pcie")
    xhci = tree.by_path.get(pcie.path + "/pci@0,0/usb@0,0")
    if xhci is None:
        raise Failure(f"the device tree has no {pcie.path}/pci@0,0/usb@0,0 (the VL805): not a Pi 4B DTB?")
    # Upstream's bcm2711-rpi-4-b.dts gives usb@0,0 no compatible (see
    # KNOWN_PCI_DEVICES): on a 4B it is always the VL805.
    ids = pci_ids(xhci) or pci_modalias(0x1106, 0x3483)
    xhci.label = xhci.label or "VL805"
    result.append(walk(tree, kernel, "USB disk: the VL805 xHCI behind the PCIe bridge", xhci,
                       pci_modalias=ids[1], above=USB_DISK_CHAIN))
    return result


# --- the initramfs -----------------------------------------------------------


def decompress_stream(data, what):
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:6] == b"\xfd7zXZ\0":
        return lzma.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return run_decompressor("zstd", data, what)
    if data[:6] in (b"070701", b"070702"):
        return data
    raise Failure(f"{what}: not a cpio archive nor gzip, xz or zstd after byte 0 (magic {data[:6]!r})")


def cpio_names(data, what):
    """Names in a newc cpio stream with other archives after it (initramfs-tools
    puts uncompressed early archives before the compressed main one)."""
    names = []
    pos = 0
    while pos < len(data):
        if data[pos : pos + 1] == b"\0":
            pos += 1  # padding between archives
            continue
        if data[pos : pos + 6] not in (b"070701", b"070702"):
            data = decompress_stream(data[pos:], what)
            pos = 0
            continue
        header = data[pos : pos + 110]
        if len(header) < 110:
            raise Failure(f"{what}: truncated cpio header")
        namesize = int(header[94:102], 16)
        filesize = int(header[54:62], 16)
        name = data[pos + 110 : pos + 110 + namesize - 1].decode("utf-8", "replace")
        pos = (pos + 110 + namesize + 3) & ~3
        pos = (pos + filesize + 3) & ~3
        if name != "TRAILER!!!":
            names.append(name)
    return names


def initrd_modules(path, kernel):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise Failure(f"cannot read the initramfs {path}: {e}") from e
    names = cpio_names(data, path)
    mods, versions, has_dep = set(), set(), False
    for name in names:
        m = re.match(r"^(?:\./)?(?:usr/)?lib/modules/([^/]+)/(.*)$", name)
        if not m:
            continue
        versions.add(m.group(1))
        if m.group(2) == "modules.dep" and m.group(1) == kernel.version:
            has_dep = True
        if re.search(r"\.ko(\.(xz|zst|gz))?$", name) and m.group(1) == kernel.version:
            mods.add(module_name(name))
    problems = []
    if kernel.version not in versions:
        problems.append(f"the initramfs has no modules for {kernel.version} "
                        f"(it has {', '.join(sorted(versions)) or 'none'}): it belongs to another kernel")
    elif not has_dep:
        problems.append(f"the initramfs has no lib/modules/{kernel.version}/modules.dep: modprobe cannot load anything")
    return mods, problems


def listed_modules(path, kernel):
    """A module list (initramfs-tools' modules file): names, comments, blank lines."""
    try:
        with open(path) as f:
            names = [line.split()[0] for line in f if line.split() and not line.lstrip().startswith("#")]
    except OSError as e:
        raise Failure(f"cannot read the module list {path}: {e}") from e
    unknown = [n for n in names if not kernel.known(n)]
    problems = [f"{path} names {n}, which is neither a module of {kernel.version} nor built in" for n in unknown]
    # initramfs-tools copies each listed module with what modules.dep says it needs.
    return kernel.closure(n.replace("-", "_") for n in names if not n.replace("-", "_") in kernel.builtin), problems


# --- the modes ---------------------------------------------------------------


def needed_modules(kernel, all_walks):
    mods = []
    for w in all_walks:
        for step in w.steps:
            for m in step.driven.modules:
                if m not in mods:
                    mods.append(m)
    return mods


def check_named(kernel, names, what):
    unknown = [n for n in names if not kernel.known(n)]
    if unknown:
        raise Failure(f"{what} in image/dtb-modules.py names {', '.join(unknown)}, "
                      f"which {kernel.version} has neither as a module nor built in: fix the list")


def print_list(kernel, all_walks):
    check_named(kernel, FILESYSTEM_MODULES, "FILESYSTEM_MODULES")
    check_named(kernel, QEMU_VIRT_MODULES, "QEMU_VIRT_MODULES")
    print(f"# Written by image/dtb-modules.py from the Pi 4B's device tree and {kernel.version}:")
    print("# what the root devices (SD controller; VL805 xHCI, USB disks) need to probe.")
    for w in all_walks:
        mods = [m for s in w.steps for m in s.driven.modules]
        print(f"# {w.root}")
        for m in dict.fromkeys(mods):
            print(m)
    print("# the root and boot file systems")
    for m in FILESYSTEM_MODULES:
        print(m if m not in kernel.builtin else f"# {m}: built in")
    print("# QEMU -M virt, the test machine only (no DTB to walk)")
    for m in QEMU_VIRT_MODULES:
        print(m if m not in kernel.builtin else f"# {m}: built in")


def report(kernel, all_walks, present, source_problems, source):
    """Prints the walk with each driver's state; returns the missing modules."""
    missing = {}
    explained = set()  # modules whose modules.dep needs were printed
    ok = not source_problems
    for problem in source_problems:
        print(f"FAILED: {problem}")

    def state(mod):
        if mod in kernel.builtin:
            return "built in"
        return "in the initramfs" if mod in present else "MISSING"

    for w in all_walks:
        print(f"== {w.root}")
        for problem in w.problems:
            print(f"  FAILED: {problem}")
            ok = False
        for step in w.steps:
            path = " → ".join(step.chain)
            if not step.driven.ok:
                print(f"  {path}: NO DRIVER: {step.driven.how}")
                ok = False
                continue
            if not step.driven.modules:
                print(f"  {path}: {step.driven.how}")
                continue
            for mod in step.driven.modules:
                print(f"  {path} → {kernel.display(mod)}: {state(mod)}")
                if state(mod) == "MISSING":
                    missing.setdefault(mod, path)
                if mod in explained:
                    continue
                explained.add(mod)
                for dep in sorted(kernel.closure([mod]) - {mod}):
                    if state(dep) == "MISSING":
                        print(f"      {kernel.display(mod)} needs {kernel.display(dep)} (modules.dep): MISSING")
                        missing.setdefault(dep, path)
        for d in w.disabled:
            print(f"  skipped: {d}: disabled in the DTB (no device, and fw_devlink does not wait for it)")
    extra = [(ROOT_FILESYSTEM, "the root file system (rootfstype)")] + [
        (m, "QEMU -M virt test machine") for m in QEMU_VIRT_MODULES
    ]
    print("== the root file system and the test machine")
    for mod, why in extra:
        mod = mod.replace("-", "_")
        if not kernel.known(mod):
            print(f"  {why}: {mod}: FAILED: {kernel.version} has no such module")
            ok = False
            continue
        print(f"  {why} → {kernel.display(mod)}: {state(mod)}")
        if state(mod) == "MISSING":
            missing.setdefault(mod, why)
        for dep in sorted(kernel.closure([mod]) - {mod}):
            if state(dep) == "MISSING":
                print(f"      {kernel.display(mod)} needs {kernel.display(dep)} (modules.dep): MISSING")
                missing.setdefault(dep, why)
    if missing:
        names = ", ".join(kernel.display(m) for m in missing)
        print(f"FAILED: {source} lacks {len(missing)} module(s) the root devices need: {names}")
        print("  Build the initramfs from the list `image/dtb-modules.py --list` prints "
              "(image/customize-rootfs.sh does) instead of a hand list.")
    elif ok:
        print(f"ok: every driver the Pi 4's root devices need is built in or in {source}")
    return bool(missing) or not ok


def main():
    parser = argparse.ArgumentParser(
        description="Kernel modules the Raspberry Pi 4's root devices need, from its device tree.")
    parser.add_argument("--dtb", required=True, help="bcm2711-rpi-4-b.dtb")
    parser.add_argument("--modules", required=True, help="lib/modules/KVER, after depmod")
    parser.add_argument("--kernel", required=True, help="vmlinuz (gzip, EFI zboot or plain Image)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="print the module list for initramfs-tools")
    mode.add_argument("--check", metavar="INITRD", help="check an initramfs")
    mode.add_argument("--check-modules", metavar="FILE", help="check a list of module names")
    args = parser.parse_args()
    try:
        tree = DeviceTree(args.dtb)
        kernel = Kernel(args.modules, args.kernel)
        all_walks = walks(tree, kernel)
        if args.list:
            problems = [p for w in all_walks for p in w.problems]
            problems += [" → ".join(s.chain) + ": " + s.driven.how for w in all_walks for s in w.steps if not s.driven.ok]
            if problems:
                raise Failure("the root devices cannot probe with this kernel and DTB:\n  " + "\n  ".join(problems))
            print_list(kernel, all_walks)
            return 0
        if args.check:
            present, problems = initrd_modules(args.check, kernel)
            source = args.check
        else:
            present, problems = listed_modules(args.check_modules, kernel)
            source = args.check_modules
        return 1 if report(kernel, all_walks, present, problems, source) else 0
    except Failure as e:
        print(f"dtb-modules.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
