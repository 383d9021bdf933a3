"""Layout: formats, designs, contrast, fonts, QR codes, Typst typesetting, thumbnails."""
