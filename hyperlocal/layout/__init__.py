"""Layout: where things go on a flyer and how Typst typesets it.

``formats`` (the table of formats) and ``designs`` (frosted, split, scrim) place
the zones; ``contrast`` and ``backdrop`` pick legible colours from the picture and
frost it under a panel; ``fonts`` is the font library; ``direction`` the reading
direction; ``geometry`` the page around the trim; ``job`` writes the Typst job
from one ``TypesetRequest``; ``typesetting`` compiles it; ``trim`` sets the PDF's
print boxes and cuts the PNG to the trim; ``qr`` and ``thumbnails`` make QR codes
and small copies of flyers.
"""
