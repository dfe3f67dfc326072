using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Azure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using ServerlessClassifier.Functions.Options;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.CustomVision;

/// <summary>
/// Custom Vision's prediction API classify calls (README "Moving from Custom Vision"): the <c>Prediction-Key</c> checked
/// against <see cref="ClassifierOptions.CustomVisionPredictionKeys"/>, the project id mapped to a named model, the
/// published name to a version of it (a version id of the model, else its current version), the image read from the
/// body or, for <c>/url</c>, from the images container of this app's storage account only, and the full ranking answered
/// as Custom Vision's ImagePrediction.
/// </summary>
public sealed class CustomVisionService(
    ModelRegistry models,
    ClassificationService classifier,
    ImageRequestReader reader,
    ImageDecoder decoder,
    ClassifierContainers containers,
    IOptions<ClassifierOptions> options,
    TimeProvider? time = null)
{
    public const string KeyHeader = "Prediction-Key";

    /// <summary>The most bytes of a <c>/url</c> request's JSON body read.</summary>
    public const int MaxUrlBodyBytes = 8 * 1024;

    private readonly CustomVisionProjects projects = CustomVisionProjects.Parse(options.Value.CustomVisionProjects);
    private readonly byte[][] keys = [.. (options.Value.CustomVisionPredictionKeys ?? "")
        .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Encoding.UTF8.GetBytes)];

    public async Task<CustomVisionImagePrediction> ClassifyAsync(HttpRequest request, string apiVersion, string projectId, string publishedName, string source, string? nostore, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckKey(request);
        if (apiVersion is not ("v3.0" or "v3.1") || source is not ("image" or "url") || nostore is not (null or "nostore"))
        {
            throw new CustomVisionException(StatusCodes.Status404NotFound, "NotFound", "No such operation: the classify routes are /customvision/v3.0|v3.1/prediction/{projectId}/classify/iterations/{publishedName}/image|url[/nostore].");
        }
        var model = Guid.TryParse(projectId, out var project) ? projects.ModelFor(project) : null;
        if (model is null)
        {
            throw new CustomVisionException(StatusCodes.Status404NotFound, "NotFoundProject", $"Project {Shorten(projectId)} is not served by this app.");
        }
        if (source == "image")
        {
            reader.CheckHeaders(request);
        }
        var (image, lease) = await ReadAndAcquireAsync(request, model, publishedName, source, cancellationToken).ConfigureAwait(false);
        using var held = lease;
        var labels = lease.Pipeline.Manifest.Labels.Count;
        var result = await classifier.ClassifyAsync(lease, image, labels, threshold: null, cancellationToken).ConfigureAwait(false);
        // The project's own tag ids when the model was trained from its export, else stable derived ones.
        var tagIds = lease.Pipeline.Manifest.CustomVisionTagIds;
        var predictions = result.Classification.Top
            .Select(p => new CustomVisionPrediction(p.Probability, tagIds?.GetValueOrDefault(p.Label) is { } id && id != Guid.Empty ? id : CustomVisionIds.Tag(model, p.Label), p.Label))
            .ToList();
        return new CustomVisionImagePrediction(Guid.NewGuid(), project, CustomVisionIds.Iteration(model, result.ModelVersion),
            (time ?? TimeProvider.System).GetUtcNow(), predictions);
    }

    /// <summary>The image and the lease that classifies it (a canary's share by the image's bytes, when the published name leaves the choice to <c>current.json</c>).</summary>
    private async Task<(ReadOnlyMemory<byte> Image, ModelLease Lease)> ReadAndAcquireAsync(HttpRequest request, string model, string publishedName, string source, CancellationToken cancellationToken)
    {
        var (live, pinned) = await AcquireAsync(model, publishedName, cancellationToken).ConfigureAwait(false);
        try
        {
            var image = source == "image"
                ? await reader.ReadAsync(request, cancellationToken, field: "imageData").ConfigureAwait(false)
                : await ReadUrlAsync(request, cancellationToken).ConfigureAwait(false);
            return (image, pinned ? live : await models.RouteAsync(model, live, image, cancellationToken).ConfigureAwait(false));
        }
        catch
        {
            live.Dispose();
            throw;
        }
    }

    /// <summary>The published name: a version id of the model serves that version; any other name (an iteration name such as <c>Iteration3</c>, or <c>current</c>) serves the model's current version.</summary>
    private async Task<(ModelLease Lease, bool Pinned)> AcquireAsync(string model, string publishedName, CancellationToken cancellationToken)
    {
        try
        {
            if (ModelStore.IsValidVersion(publishedName) && !string.Equals(publishedName, "current", StringComparison.OrdinalIgnoreCase)
                && (await models.GetAsync(model, cancellationToken).ConfigureAwait(false)).Current?.Version != publishedName
                && await models.IsPublishedVersionAsync(model, publishedName, cancellationToken).ConfigureAwait(false))
            {
                return (await models.AcquireVersionAsync(model, publishedName, cancellationToken).ConfigureAwait(false), true);
            }
            return (await models.AcquireAsync(model, cancellationToken).ConfigureAwait(false), false);
        }
        catch (ModelNotFoundException e)
        {
            throw new CustomVisionException(StatusCodes.Status404NotFound, "NotFoundIteration", e.Message);
        }
    }

    private void CheckKey(HttpRequest request)
    {
        var given = request.Headers[KeyHeader].ToString();
        var bytes = Encoding.UTF8.GetBytes(given);
        var valid = false;
        foreach (var key in keys)
        {
            valid |= CryptographicOperations.FixedTimeEquals(bytes, key);
        }
        if (!valid)
        {
            throw new CustomVisionException(StatusCodes.Status401Unauthorized, "Unauthorized",
                $"Access denied: a missing or invalid {KeyHeader} header.");
        }
    }

    /// <summary>The image of a <c>/url</c> call: <c>{"url": "..."}</c>, a blob of this app's images container and nothing else (no other host, container or scheme is ever fetched).</summary>
    private async Task<ReadOnlyMemory<byte>> ReadUrlAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentLength > MaxUrlBodyBytes)
        {
            throw BadUrl("The body is too large for {\"url\": \"...\"}.");
        }
        using var body = new MemoryStream();
        var buffer = new byte[4096];
        int read;
        while ((read = await request.Body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            body.Write(buffer, 0, read);
            if (body.Length > MaxUrlBodyBytes)
            {
                throw BadUrl("The body is too large for {\"url\": \"...\"}.");
            }
        }
        string? url;
        try
        {
            using var json = JsonDocument.Parse(body.ToArray());
            url = json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty("url", out var value) && value.ValueKind == JsonValueKind.String
                ? value.GetString()
                : json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty("Url", out var upper) && upper.ValueKind == JsonValueKind.String ? upper.GetString() : null;
        }
        catch (JsonException)
        {
            url = null;
        }
        if (url is null)
        {
            throw BadUrl("The body must be {\"url\": \"<image URL>\"}.");
        }
        var name = BlobNameInImages(url) ?? throw BadUrl("Only images in this app's images container can be classified by URL.");
        try
        {
            return await ImageBlobs.ReadAsync(containers.Images.GetBlobClient(name), decoder, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException e) when (e.Status is 404 or 403 or 412)
        {
            throw BadUrl("The image could not be read from that URL.");
        }
    }

    /// <summary>The blob name when <paramref name="url"/> is a blob of the images container (same scheme, host, port and container; any query ignored), else null.</summary>
    internal string? BlobNameInImages(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.UserInfo.Length > 0 || !string.IsNullOrEmpty(uri.Fragment))
        {
            return null;
        }
        var container = containers.Images.Uri;
        var prefix = container.AbsolutePath.TrimEnd('/') + "/";
        if (!string.Equals(uri.Scheme, container.Scheme, StringComparison.OrdinalIgnoreCase)
            || !string.Equals(uri.Host, container.Host, StringComparison.OrdinalIgnoreCase)
            || uri.Port != container.Port
            || !uri.AbsolutePath.StartsWith(prefix, StringComparison.Ordinal))
        {
            return null;
        }
        var name = Uri.UnescapeDataString(uri.AbsolutePath[prefix.Length..]);
        return name.Length == 0 || name.Split('/').Any(s => s is "" or "." or "..") ? null : name;
    }

    private static CustomVisionException BadUrl(string message) => new(StatusCodes.Status400BadRequest, "BadRequestImageUrl", message);

    private static string Shorten(string value) => value.Length > 64 ? value[..64] + "..." : value;
}
