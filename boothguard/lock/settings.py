from boothguard.section import Section


class LockSection(Section):
    pass
