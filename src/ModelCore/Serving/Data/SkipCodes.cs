namespace ServerlessClassifier.ModelCore.Data;

/// <summary>Reasons, besides the decoder's <see cref="Imaging.ImageErrorCode"/>, that an image listed in a data set is left out.</summary>
public static class SkipCodes
{
    /// <summary>The file or blob does not exist.</summary>
    public const string Missing = "Missing";

    /// <summary>The same image was listed before (the first listing is used).</summary>
    public const string Duplicate = "Duplicate";

    /// <summary>A manifest row names an image but no label.</summary>
    public const string Unlabelled = "Unlabelled";
}
