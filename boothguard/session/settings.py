from boothguard.section import Section


class ClipboardSection(Section):
    pass


class ScreenshotSection(Section):
    pass
