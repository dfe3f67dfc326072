using System.Buffers.Binary;
using System.Text;
using ELFSharp.ELF;
using ELFSharp.ELF.Sections;

namespace ServerlessClassifier.ModelCore.Runtime;

/// <summary>One symbol-version requirement of a shared library (an Elf64_Vernaux entry).</summary>
/// <param name="File">The library that must provide the version, e.g. <c>libstdc++.so.6</c>.</param>
/// <param name="Name">The version name, e.g. <c>GLIBCXX_3.4.32</c>.</param>
/// <param name="Flags">vna_flags; <see cref="ElfVersionTables.WeakFlag"/> marks a need the loader only warns about.</param>
/// <param name="FlagsOffset">File offset of vna_flags, so a patch can set the weak bit in place.</param>
public sealed record ElfVersionNeed(string File, string Name, ushort Flags, long FlagsOffset)
{
    public bool IsWeak => (Flags & ElfVersionTables.WeakFlag) != 0;
}

/// <summary>
/// Reads the GNU symbol-versioning tables of a 64-bit little-endian ELF shared library.
/// ELFSharp locates the sections; the version records themselves (Elf64_Verneed/Vernaux and
/// Elf64_Verdef/Verdaux, fixed 16- and 20-byte structs) are not modelled by any maintained .NET
/// ELF library, so they are walked here.
/// </summary>
public static class ElfVersionTables
{
    /// <summary>VER_FLG_WEAK from elf.h.</summary>
    public const ushort WeakFlag = 0x2;

    /// <summary>The version needs (<c>.gnu.version_r</c>) of a library, in file order.</summary>
    public static IReadOnlyList<ElfVersionNeed> ReadNeeds(string path)
    {
        using var elf = ELFReader.Load<ulong>(path);
        if (!elf.TryGetSection(".gnu.version_r", out var needSection))
        {
            return [];
        }
        var section = (Section<ulong>)needSection;
        var data = section.GetContents();
        var strings = ReadDynamicStrings(elf);
        var needs = new List<ElfVersionNeed>();
        var needOffset = 0;
        while (true)
        {
            var count = ReadUInt16(data, needOffset + 2);
            var file = ReadString(strings, ReadUInt32(data, needOffset + 4));
            var auxOffset = needOffset + (int)ReadUInt32(data, needOffset + 8);
            for (var i = 0; i < count; i++)
            {
                var flags = ReadUInt16(data, auxOffset + 4);
                var name = ReadString(strings, ReadUInt32(data, auxOffset + 8));
                needs.Add(new ElfVersionNeed(file, name, flags, (long)section.Offset + auxOffset + 4));
                var nextAux = ReadUInt32(data, auxOffset + 12);
                if (nextAux == 0)
                {
                    break;
                }
                auxOffset += (int)nextAux;
            }
            var nextNeed = ReadUInt32(data, needOffset + 12);
            if (nextNeed == 0)
            {
                return needs;
            }
            needOffset += (int)nextNeed;
        }
    }

    /// <summary>The version names a library defines (<c>.gnu.version_d</c>), e.g. every GLIBCXX_3.4.x of a libstdc++.</summary>
    public static IReadOnlySet<string> ReadDefinitions(string path)
    {
        using var elf = ELFReader.Load<ulong>(path);
        var names = new HashSet<string>(StringComparer.Ordinal);
        if (!elf.TryGetSection(".gnu.version_d", out var defSection))
        {
            return names;
        }
        var data = defSection.GetContents();
        var strings = ReadDynamicStrings(elf);
        var defOffset = 0;
        while (true)
        {
            var auxOffset = defOffset + (int)ReadUInt32(data, defOffset + 12);
            names.Add(ReadString(strings, ReadUInt32(data, auxOffset)));
            var next = ReadUInt32(data, defOffset + 16);
            if (next == 0)
            {
                return names;
            }
            defOffset += (int)next;
        }
    }

    private static byte[] ReadDynamicStrings(ELF<ulong> elf) =>
        elf.TryGetSection(".dynstr", out var dynstr)
            ? dynstr.GetContents()
            : throw new InvalidDataException("ELF file has version tables but no .dynstr section.");

    private static ushort ReadUInt16(byte[] data, int offset) => BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(offset, 2));

    private static uint ReadUInt32(byte[] data, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(offset, 4));

    private static string ReadString(byte[] table, uint offset)
    {
        var span = table.AsSpan((int)offset);
        var end = span.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? span : span[..end]);
    }
}
